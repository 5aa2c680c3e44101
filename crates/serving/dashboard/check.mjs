// Drives Debian's chromium (headless, through playwright-core) on the Strata dashboard for
// tests/python/test_dashboard.py. Protocol over stdio, one JSON object per line:
//   out {"phase": "loaded", "panels": [...], "health": [...], "console_errors": [...]}
//   in  "next"   (the test has committed new data)
//   out {"phase": "moved", ...} once any panel's total changed without a reload, or after 60 s
// Usage: node check.mjs <url with #key=…> <screenshot.png>
import { chromium } from "playwright-core";
import readline from "node:readline";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const consoleErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  let navigations = 0;
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations += 1; });
  await page.goto(url);
  await page.waitForFunction(() => window.strataDashboard && window.strataDashboard.refreshes >= 1
    && window.strataDashboard.panels.length > 0
    && window.strataDashboard.panels.every((p) => p.points > 0), null, { timeout: 30000 });
  const read = () => page.evaluate(() => ({
    panels: window.strataDashboard.panels.map((p) => ({
      title: p.title, metric: p.metric, measure: p.measure, by: p.by, split: p.split || null,
      points: p.points, total: p.total,
      shown: Number(p.el.querySelector(".value").dataset.raw),
      text: p.el.querySelector(".value").textContent,
      canvas: !!p.el.querySelector("canvas"),
      series: p.plot ? p.plot.series.length - 1 : 0,
    })),
    health: window.strataDashboard.health,
    errors: window.strataDashboard.errors,
    refreshes: window.strataDashboard.refreshes,
  }));
  const first = await read();
  console.log(JSON.stringify({ phase: "loaded", ...first, console_errors: consoleErrors }));
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) { if (line.trim() === "next") break; }
  const before = first.panels.map((p) => p.total);
  const startNavs = navigations;
  const moved = await page.waitForFunction((b) => window.strataDashboard.panels.some((p, i) => p.total !== b[i]),
    before, { timeout: 60000 }).then(() => true, () => false);
  // Let the refresh that moved the charts finish (the health table comes last).
  const ticks = await page.evaluate(() => window.strataDashboard.refreshes);
  await page.waitForFunction((t) => window.strataDashboard.refreshes > t, ticks, { timeout: 30000 }).catch(() => {});
  const after = await read();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ phase: "moved", moved, reloaded: navigations !== startNavs, ...after,
    console_errors: consoleErrors }));
} finally {
  await browser.close();
}
