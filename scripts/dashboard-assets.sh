#!/usr/bin/env bash
# Vendors the dashboard's charting library (uPlot, MIT) from npm, at the version in
# crates/serving/dashboard/package-lock.json, into crates/serving/assets/, which the binary embeds
# (no CDN, no Node at run time). Also installs playwright-core, which the dashboard test uses to
# drive Debian's chromium. `scripts/dashboard-assets.sh [--check]`: --check fails when the
# committed copy differs from the locked package.
set -euo pipefail
cd "$(dirname "$0")/../crates/serving/dashboard"
npm ci --no-audit --no-fund --silent >&2
dist=node_modules/uplot/dist
if [ "${1:-}" = "--check" ]; then
  cmp "$dist/uPlot.iife.min.js" ../assets/uPlot.iife.min.js
  cmp "$dist/uPlot.min.css" ../assets/uPlot.min.css
else
  cp "$dist/uPlot.iife.min.js" "$dist/uPlot.min.css" ../assets/
  cp node_modules/uplot/LICENSE ../assets/uPlot.LICENSE
fi
