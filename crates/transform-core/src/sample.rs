//! Deterministic generators of realistic source records, with the faults real sources have.
//!
//! Used by tests, benchmarks and `strata demo`. Pure functions of a seed (a small xorshift
//! generator, so results are identical on every machine and version).

/// Fault rates for generated IoT events (fractions of all events, 0.0–1.0).
#[derive(Debug, Clone, Copy)]
pub struct IotFaults {
    /// Lines that are not JSON objects (truncated, garbage, arrays).
    pub malformed: f64,
    /// JSON objects with a bad value: temperature text, out of range, missing id, bad time.
    pub invalid: f64,
    /// Exact repeats of an earlier event (same `device_id` + `seq`).
    pub duplicates: f64,
}

impl Default for IotFaults {
    fn default() -> Self {
        IotFaults {
            malformed: 0.01,
            invalid: 0.0,
            duplicates: 0.01,
        }
    }
}

/// A tiny deterministic PRNG (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator (0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

const SITES: [&str; 4] = ["SP-01", "SP-02", "RJ-01", "POA-03"];
const TAGS: [&str; 5] = ["line-1", "line-2", "line-3", "cold-room", "dock"];

/// Generates `n` IoT events as NDJSON lines shaped like `samples/iot_event.json`.
///
/// Events start at `start_epoch_ms` and advance ~10 ms each across 200 devices; about 3% send
/// temperature as a string (valid: devices do that) and 2% arrive late (up to 10 minutes).
pub fn iot_events(n: usize, seed: u64, faults: IotFaults, start_epoch_ms: i64) -> Vec<String> {
    iot_events_of_devices(n, 200, seed, faults, start_epoch_ms)
}

/// [`iot_events`] across `devices` devices (at least one).
pub fn iot_events_of_devices(
    n: usize,
    devices: usize,
    seed: u64,
    faults: IotFaults,
    start_epoch_ms: i64,
) -> Vec<String> {
    let devices = devices.max(1);
    let mut rng = Rng::new(seed);
    let mut out: Vec<String> = Vec::with_capacity(n);
    let mut seqs = vec![0u64; devices];
    for i in 0..n {
        let roll = rng.unit();
        if roll < faults.duplicates && !out.is_empty() {
            let back = rng.below(out.len().min(50) as u64) as usize + 1;
            let prev = out[out.len() - back].clone();
            out.push(prev);
            continue;
        }
        if roll < faults.duplicates + faults.malformed {
            out.push(match rng.below(4) {
                0 => "{\"device_id\":\"dev-00001\",\"ts\":\"2026-11-20T13:4".to_string(),
                1 => "garbage \u{1}\u{2} not json".to_string(),
                2 => "[1,2,3]".to_string(),
                _ => String::new(),
            });
            continue;
        }
        let device = rng.below(devices as u64) as usize;
        seqs[device] += 1;
        let mut ts_ms = start_epoch_ms + i as i64 * 10;
        if rng.unit() < 0.02 {
            ts_ms -= rng.below(600_000) as i64;
        }
        let ts = iso_millis(ts_ms);
        let temp = (rng.below(600) as f64) / 10.0 - 10.0;
        let humidity = (rng.below(1000) as f64) / 10.0;
        let battery = rng.below(101);
        let lat = -23.5 - rng.below(1000) as f64 / 10_000.0;
        let lon = -46.6 - rng.below(1000) as f64 / 10_000.0;
        let site = SITES[device % SITES.len()];
        let tag = TAGS[device % TAGS.len()];
        let mut device_id = format!("\"dev-{device:05}\"");
        let mut ts_text = format!("\"{ts}\"");
        let mut temperature = if rng.unit() < 0.03 {
            format!("\"{temp:.1}\"")
        } else {
            format!("{temp:.1}")
        };
        if roll < faults.duplicates + faults.malformed + faults.invalid {
            match rng.below(4) {
                0 => temperature = "\"n/a\"".into(),
                1 => temperature = "500.0".into(),
                2 => device_id = "null".into(),
                _ => ts_text = "\"yesterday\"".into(),
            }
        }
        out.push(format!(
            "{{\"device_id\":{device_id},\"ts\":{ts_text},\"seq\":{seq},\"temperature\":{temperature},\"humidity\":{humidity:.1},\"battery\":{battery},\"location\":{{\"lat\":{lat:.4},\"lon\":{lon:.4},\"site\":\"{site}\"}},\"tags\":[\"{tag}\",\"cold-room\"],\"owner_email\":\"ops{device}@example.com\"}}",
            seq = seqs[device]
        ));
    }
    out
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn iso_millis(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let ms = epoch_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days → civil date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Pipefy webhook events exactly as `strata serve webhooks` stores them: the envelope
/// `{source, received_at, idempotency_key, event_type, event}` around the body Pipefy POSTed
/// (the event under `data`; actions `card.create`, `card.move`, `card.field_update`,
/// `card.done`, `card.delete`). About 1% are retried deliveries (same key) and 0.5% malformed.
pub fn pipefy_events(n: usize, seed: u64, start_epoch_ms: i64) -> Vec<String> {
    const PHASES: [(i64, &str); 4] = [
        (318_220_070, "Caixa de entrada"),
        (318_220_071, "Em análise"),
        (318_220_072, "Aprovado"),
        (318_220_073, "Concluído"),
    ];
    let mut rng = Rng::new(seed);
    let mut out: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        let roll = rng.unit();
        if roll < 0.01 && !out.is_empty() {
            let prev = out[out.len() - 1 - rng.below(out.len().min(20) as u64) as usize].clone();
            out.push(prev);
            continue;
        }
        if roll < 0.015 {
            out.push(
                "{\"source\":\"pipefy\",\"event\":{\"data\":{\"action\":\"card.move\"".to_string(),
            );
            continue;
        }
        let card = 904_512_000 + rng.below(500) as i64;
        let user = 301_000 + rng.below(20) as i64;
        let at = iso_millis(start_epoch_ms + i as i64 * 1000);
        let action = [
            "card.create",
            "card.move",
            "card.move",
            "card.field_update",
            "card.done",
            "card.delete",
        ][rng.below(6) as usize];
        let from = PHASES[rng.below(3) as usize];
        let to = PHASES[(PHASES.iter().position(|p| p == &from).unwrap_or(0) + 1).min(3)];
        let extra = match action {
            "card.move" => format!(
                ",\"from\":{{\"id\":{},\"name\":\"{}\"}},\"to\":{{\"id\":{},\"name\":\"{}\"}},\"moved_by\":{{\"id\":{user},\"name\":\"User {user}\",\"email\":\"user{user}@example.com\"}}",
                from.0, from.1, to.0, to.1
            ),
            "card.create" => format!(
                ",\"created_by\":{{\"id\":{user},\"name\":\"User {user}\",\"email\":\"user{user}@example.com\"}}"
            ),
            "card.field_update" => format!(
                ",\"field\":{{\"id\":\"valor_do_pedido\",\"label\":\"Valor do pedido\"}},\"new_value\":\"{}.{:02}\",\"updated_by\":{{\"id\":{user},\"email\":\"user{user}@example.com\"}}",
                100 + rng.below(5000),
                rng.below(100)
            ),
            _ => String::new(),
        };
        out.push(format!(
            "{{\"source\":\"pipefy\",\"received_at\":\"{at}\",\"idempotency_key\":\"pf-{seed}-{i}\",\"event_type\":\"{action}\",\"event\":{{\"data\":{{\"action\":\"{action}\",\"card\":{{\"id\":{card},\"title\":\"Pedido {card} - Cliente {c}\",\"pipe_id\":\"302554109\"}}{extra}}}}}}}",
            c = card % 97
        ));
    }
    out
}

/// X API v2 recent-search results exactly as `strata ingest http` (preset `x_recent_search`)
/// stores them: one post per record under `item`, with the `request` that produced it. Pages overlap a little, so ~2% of posts arrive twice.
pub fn x_posts(n: usize, seed: u64, start_epoch_ms: i64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        if rng.unit() < 0.02 && !out.is_empty() {
            let prev = out[out.len() - 1].clone();
            out.push(prev);
            continue;
        }
        let id = 1_861_000_000_000_000_000u64 + i as u64;
        let author = ["2244994945", "783214", "99120", "5521"][rng.below(4) as usize];
        let at = iso_millis(start_epoch_ms + i as i64 * 3000);
        let text = [
            "Sensor da linha 3 voltou a operar #iot",
            "Nova versão do pipeline publicada",
            "Manutenção programada na câmara fria",
            "Relatório semanal disponível",
        ][rng.below(4) as usize];
        out.push(format!(
            "{{\"item\":{{\"id\":\"{id}\",\"text\":\"{text}\",\"author_id\":\"{author}\",\"created_at\":\"{at}\",\"lang\":\"pt\",\"public_metrics\":{{\"retweet_count\":{},\"reply_count\":{},\"like_count\":{},\"quote_count\":0}}}},\"request\":{{\"source\":\"x\",\"method\":\"GET\",\"url\":\"https://api.x.com/2/tweets/search/recent\",\"params\":{{\"query\":\"#iot\",\"max_results\":\"100\"}},\"page\":{},\"status\":200,\"requested_at\":\"{at}\"}}}}",
            rng.below(20),
            rng.below(5),
            rng.below(200),
            i / 100 + 1
        ));
    }
    out
}

/// Debezium-style MySQL change events for a `shop.orders` table: inserts, status updates and
/// some deletes, in binlog order (file / position / row give the total order).
pub fn mysql_order_changes(n: usize, seed: u64, start_epoch_ms: i64) -> Vec<String> {
    const STATUS: [&str; 4] = ["pending", "paid", "shipped", "delivered"];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut orders: Vec<(i64, usize, String)> = Vec::new();
    let mut pos = 4u64;
    for i in 0..n {
        let ts = start_epoch_ms + i as i64 * 500;
        pos += 180 + rng.below(200);
        let row_json = |id: i64, status: &str, amount: &str| {
            format!(
                "{{\"id\":{id},\"customer\":\"Cliente {}\",\"status\":\"{status}\",\"amount\":\"{amount}\",\"updated_at\":{ts}}}",
                id % 53
            )
        };
        let (op, before, after) = if orders.is_empty() || rng.unit() < 0.4 {
            let id = 1000 + orders.len() as i64;
            let amount = format!("{}.{:02}", 10 + rng.below(5000), rng.below(100));
            orders.push((id, 0, amount.clone()));
            ("c", "null".to_string(), row_json(id, STATUS[0], &amount))
        } else {
            let k = rng.below(orders.len() as u64) as usize;
            let (id, status, amount) = orders[k].clone();
            if status + 1 < STATUS.len() && rng.unit() < 0.9 {
                orders[k].1 += 1;
                (
                    "u",
                    row_json(id, STATUS[status], &amount),
                    row_json(id, STATUS[status + 1], &amount),
                )
            } else {
                orders.swap_remove(k);
                (
                    "d",
                    row_json(id, STATUS[status], &amount),
                    "null".to_string(),
                )
            }
        };
        out.push(format!(
            "{{\"before\":{before},\"after\":{after},\"source\":{{\"version\":\"strata\",\"connector\":\"mysql\",\"name\":\"shop\",\"ts_ms\":{ts},\"snapshot\":\"false\",\"db\":\"shop\",\"table\":\"orders\",\"server_id\":1,\"gtid\":\"0-1-{g}\",\"file\":\"mysql-bin.000003\",\"pos\":{pos},\"row\":0}},\"op\":\"{op}\",\"ts_ms\":{ts}}}",
            g = 2000 + i
        ));
    }
    out
}

/// Rows of a CRM `customers` table as a PostgreSQL full load (`COPY … (FORMAT binary)`) maps
/// them: `customer_id` bigint, `name` text, `email` text, `segment` text, `city` text,
/// `credit_limit` numeric(12,2), `created_at` / `updated_at` timestamptz. Names are
/// `Cliente <id>` — the customers of [`mysql_order_changes`] — and about 1% of emails are invalid
/// and 0.5% of names missing, as in real CRMs.
pub fn postgres_customers(
    n: usize,
    seed: u64,
    start_epoch_ms: i64,
) -> crate::Result<arrow::array::RecordBatch> {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    const SEGMENTS: [&str; 3] = ["retail", "wholesale", "enterprise"];
    const CITIES: [&str; 5] = [
        "São Paulo",
        "Rio de Janeiro",
        "Porto Alegre",
        "Curitiba",
        "Recife",
    ];
    let mut rng = Rng::new(seed);
    let (mut names, mut emails) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut segments, mut cities, mut limits) = (Vec::new(), Vec::new(), Vec::new());
    let (mut created, mut updated) = (Vec::new(), Vec::new());
    for id in 0..n as i64 {
        names.push((rng.unit() >= 0.005).then(|| format!("Cliente {id}")));
        emails.push(if rng.unit() < 0.01 {
            format!("cliente{id}.example.com")
        } else {
            format!("cliente{id}@example.com")
        });
        segments.push(SEGMENTS[rng.below(3) as usize]);
        cities.push(CITIES[rng.below(5) as usize]);
        limits.push(100_000 + rng.below(5_000_000) as i128);
        let c = start_epoch_ms - 86_400_000 * (30 + rng.below(700) as i64);
        created.push(c * 1000);
        updated.push((c + rng.below(86_400_000 * 20) as i64) * 1000);
    }
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
        Field::new("segment", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("credit_limit", DataType::Decimal128(12, 2), true),
        Field::new("created_at", ts(), false),
        Field::new("updated_at", ts(), false),
    ]));
    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..n as i64)),
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(emails)),
        Arc::new(StringArray::from(segments)),
        Arc::new(StringArray::from(cities)),
        Arc::new(Decimal128Array::from(limits).with_precision_and_scale(12, 2)?),
        Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(updated).with_timezone("UTC")),
    ];
    Ok(arrow::array::RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_763_646_312_123), "2025-11-20T13:45:12.123Z");
    }

    #[test]
    fn deterministic_and_faulty() {
        let f = IotFaults {
            malformed: 0.05,
            invalid: 0.05,
            duplicates: 0.05,
        };
        let a = iot_events(2000, 7, f, 1_763_646_312_000);
        assert_eq!(a, iot_events(2000, 7, f, 1_763_646_312_000));
        let bad = a
            .iter()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
            .count();
        assert!(bad > 20 && bad < 250, "{bad}");
    }
}
