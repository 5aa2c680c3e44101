//! Kafka settings from a properties file, and the layering of every place settings come from.
//!
//! Why: credentials passed as `-X sasl.password=…` sit on the command line, where `ps` and
//! `/proc/*/cmdline` show them to every user of the machine. A properties file (`--kafka-config
//! client.properties`, the shape Confluent Cloud and most Kafka tools hand out) keeps them in a
//! file with its own permissions; a value may also be `${env:NAME}`.
//!
//! The format: one `key=value` per line, split at the first `=`, whitespace around the key and
//! the value dropped; blank lines and lines starting with `#` or `!` are ignored. Values are
//! taken literally (no Java escapes); a line ending in `\` (a Java continuation) is refused
//! rather than read differently from Java, and so are a line without `=`, a key that is not a
//! librdkafka property name, a key set twice, a `${env:NAME}` whose variable is not set, and a
//! setting exactly-once depends on with another value. Every error names the file and the line,
//! and never shows a value or the text of a line (it could be a secret).
//!
//! [`KafkaLayers`] merges the places settings come from, lowest first: the command's own config
//! (YAML), then the properties file, then `-X` flags; a `bootstrap.servers` (or
//! `metadata.broker.list`) in any layer sets the brokers, and an explicit `--brokers` wins over
//! all. Values stay raw until [`KafkaLayers::config`], which expands `${env:NAME}` once.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::config::{KafkaConfig, expand_env, forced_violation};
use crate::error::{ConnectorError, Result};

/// The largest properties file read (a client config is a few hundred bytes).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Property names that mean the brokers.
const BROKER_KEYS: [&str; 2] = ["bootstrap.servers", "metadata.broker.list"];

/// One `key=value` line of a properties file.
#[derive(Clone, PartialEq, Eq)]
pub struct FileProperty {
    /// The property name.
    pub key: String,
    /// Its value, raw (`${env:NAME}` not expanded yet).
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Debug for FileProperty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileProperty")
            .field("key", &self.key)
            .field("value", &shown(&self.key, &self.value))
            .field("line", &self.line)
            .finish()
    }
}

/// A parsed Kafka properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPropertiesFile {
    /// The path, as given.
    pub file: String,
    /// Its properties in file order.
    pub properties: Vec<FileProperty>,
}

impl KafkaPropertiesFile {
    /// Reads and parses `path` (at most [`MAX_FILE_BYTES`]).
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let io = |e: std::io::Error| ConnectorError::Io {
            file: name.clone(),
            source: e,
            hint: "check the --kafka-config path and its permissions",
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(file_error(
                &name,
                0,
                format!("is larger than {MAX_FILE_BYTES} bytes: not a Kafka client config"),
            ));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            file_error(&name, line, "is not UTF-8 text".to_string())
        })?;
        Self::parse(&name, &text)
    }

    /// Parses the text of a properties file named `file` (for error messages).
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let mut properties: Vec<FileProperty> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |problem: String| file_error(file, line, problem);
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                continue;
            }
            if trimmed.ends_with('\\') {
                return Err(err(
                    "ends with `\\`: line continuations are not supported (write the value on one line)"
                        .into(),
                ));
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(err("expected `key=value` (no `=` found)".into()));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(err("expected `key=value` (the key is empty)".into()));
            }
            if !is_property_name(key) {
                // Not shown: a line with a stray secret would otherwise be printed.
                return Err(err(
                    "the key is not a librdkafka property name (letters, digits, `.`, `_`, `-`)"
                        .into(),
                ));
            }
            if let Some(first) = properties.iter().find(|p| p.key == key) {
                return Err(err(format!(
                    "`{key}` is set again (first on line {}): keep one",
                    first.line
                )));
            }
            // The variables must exist now (named with the line); the value stays raw and is
            // expanded once, with the other layers.
            let expanded = expand_env(key, value).map_err(|e| err(e.to_string()))?;
            if let Some(e) = forced_violation(key, &expanded) {
                return Err(err(e.to_string()));
            }
            properties.push(FileProperty {
                key: key.to_string(),
                value: value.to_string(),
                line,
            });
        }
        Ok(KafkaPropertiesFile {
            file: file.to_string(),
            properties,
        })
    }
}

/// Kafka settings gathered from several places, lowest layer first (see the module docs).
/// Values are raw until [`KafkaLayers::config`]. `Debug` hides the values of secret-looking
/// properties.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaLayers {
    brokers: Option<String>,
    properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLayers")
            .field("brokers", &self.brokers)
            .field("properties", &redacted(&self.properties))
            .finish()
    }
}

impl KafkaLayers {
    /// The lowest layer: a command's own config (`brokers` may be absent).
    pub fn new(
        brokers: Option<String>,
        properties: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        KafkaLayers {
            brokers: brokers.filter(|b| !b.trim().is_empty()),
            properties: BTreeMap::new(),
        }
        .with_properties(properties)
    }

    /// Properties over the current ones (a later value wins); a broker key sets the brokers.
    pub fn with_properties(
        mut self,
        properties: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        for (key, value) in properties {
            if BROKER_KEYS.contains(&key.as_str()) {
                self.brokers = Some(value);
            } else {
                self.properties.insert(key, value);
            }
        }
        self
    }

    /// A properties file over the current layers.
    pub fn with_file(self, file: &KafkaPropertiesFile) -> Self {
        self.with_properties(
            file.properties
                .iter()
                .map(|p| (p.key.clone(), p.value.clone())),
        )
    }

    /// Brokers given explicitly (`--brokers`): they win over every layer.
    pub fn with_brokers(mut self, brokers: Option<String>) -> Self {
        if let Some(b) = brokers {
            self.brokers = Some(b);
        }
        self
    }

    /// The brokers, if any layer gave them (raw).
    pub fn brokers(&self) -> Option<&str> {
        self.brokers.as_deref()
    }

    /// The merged properties, without the broker keys (raw).
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The brokers and properties, raw, for a config struct that is resolved later.
    pub fn into_parts(self) -> (Option<String>, BTreeMap<String, String>) {
        (self.brokers, self.properties)
    }

    /// The connection config: `${env:NAME}` expanded once, [`KafkaConfig::check`]ed;
    /// `default_brokers` when no layer gave any.
    pub fn config(self, default_brokers: &str) -> Result<KafkaConfig> {
        let brokers = self.brokers.unwrap_or_else(|| default_brokers.to_string());
        KafkaConfig::from_profile(&brokers, self.properties)
    }
}

/// Whether a property's value must not be shown: a secret-looking name
/// ([`crate::secret::is_secret_name`]) or a private key / OAuth config, which carry credentials
/// under other names.
pub fn is_secret_property(key: &str) -> bool {
    crate::secret::is_secret_name(key)
        || matches!(
            key,
            "ssl.key.pem" | "ssl_key" | "sasl.oauthbearer.config" | "sasl.jaas.config"
        )
}

/// The properties with secret values replaced by `***` (for `Debug` output).
pub fn redacted(properties: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    properties
        .iter()
        .map(|(k, v)| (k.as_str(), shown(k, v)))
        .collect()
}

fn shown<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_property(key) {
        "***"
    } else {
        value
    }
}

fn is_property_name(key: &str) -> bool {
    key.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn file_error(file: &str, line: usize, problem: String) -> ConnectorError {
    ConnectorError::KafkaConfigFile {
        file: file.to_string(),
        line,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KafkaPropertiesFile> {
        KafkaPropertiesFile::parse("client.properties", text)
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn key_value_lines_comments_and_blanks() {
        let f = parse(
            "# Confluent Cloud\n\
             bootstrap.servers = pkc-1.example:9092\n\
             \n\
             ! another comment\n\
             security.protocol=SASL_SSL\r\n\
             sasl.password=a=b==\n\
             client.id=\n",
        )
        .expect("parses");
        let got: Vec<(&str, &str, usize)> = f
            .properties
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str(), p.line))
            .collect();
        assert_eq!(
            got,
            [
                ("bootstrap.servers", "pkc-1.example:9092", 2),
                ("security.protocol", "SASL_SSL", 5),
                ("sasl.password", "a=b==", 6),
                ("client.id", "", 7),
            ]
        );
    }

    #[test]
    fn every_parse_error_names_the_file_and_the_line_and_no_value() {
        let e = error("a=1\nsasl.password hunter2\n");
        assert!(
            e.contains("client.properties") && e.contains("line 2"),
            "{e}"
        );
        assert!(
            e.contains("expected `key=value`") && !e.contains("hunter2"),
            "{e}"
        );
        let e = error("=x\n");
        assert!(e.contains("line 1") && e.contains("key is empty"), "{e}");
        let e = error("\n\nmy hunter2 pass=x\n");
        assert!(e.contains("line 3") && !e.contains("hunter2"), "{e}");
        let e = error("sasl.password=abc\\\n  def\n");
        assert!(
            e.contains("line 1") && e.contains("continuation") && !e.contains("abc"),
            "{e}"
        );
        let e = error("acks=all\nlinger.ms=5\nacks=-1\n");
        assert!(e.contains("line 3") && e.contains("first on line 1"), "{e}");
        let e = error("sasl.password=${env:STRATA_TEST_PROPS_UNSET}\n");
        assert!(
            e.contains("line 1") && e.contains("STRATA_TEST_PROPS_UNSET") && e.contains("not set"),
            "{e}"
        );
        let e = error("# x\nenable.auto.commit=true\n");
        assert!(
            e.contains("line 2") && e.contains("enable.auto.commit"),
            "{e}"
        );
    }

    #[test]
    fn a_file_that_is_not_text_or_too_large_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin.properties");
        std::fs::write(&bin, b"a=1\nb=\xff\n").expect("write");
        let e = KafkaPropertiesFile::load(&bin)
            .expect_err("binary")
            .to_string();
        assert!(
            e.contains("bin.properties") && e.contains("line 2") && e.contains("UTF-8"),
            "{e}"
        );
        let big = dir.path().join("big.properties");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 2]).expect("write");
        let e = KafkaPropertiesFile::load(&big)
            .expect_err("big")
            .to_string();
        assert!(e.contains("larger than"), "{e}");
        let e = KafkaPropertiesFile::load(&dir.path().join("none"))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("none") && e.contains("--kafka-config"), "{e}");
    }

    #[test]
    fn layers_apply_lowest_first_and_explicit_brokers_win() {
        let file = parse("bootstrap.servers=file:9092\nlinger.ms=10\nclient.id=file\n").unwrap();
        let yaml = [
            ("linger.ms".to_string(), "1".to_string()),
            ("acks".to_string(), "all".to_string()),
        ];
        let layers = KafkaLayers::new(Some("yaml:9092".into()), yaml)
            .with_file(&file)
            .with_properties([("client.id".to_string(), "flag".to_string())]);
        assert_eq!(layers.brokers(), Some("file:9092"));
        let config = layers.clone().config("default:9092").expect("config");
        assert_eq!(config.brokers, "file:9092");
        assert_eq!(config.properties["linger.ms"], "10");
        assert_eq!(config.properties["client.id"], "flag");
        assert_eq!(config.properties["acks"], "all");
        assert!(!config.properties.contains_key("bootstrap.servers"));
        let explicit = layers
            .with_brokers(Some("flag:9092".into()))
            .config("default:9092")
            .unwrap();
        assert_eq!(explicit.brokers, "flag:9092");
        // Nothing anywhere: the default.
        let none = KafkaLayers::new(None, []);
        assert_eq!(
            none.config("127.0.0.1:9092").unwrap().brokers,
            "127.0.0.1:9092"
        );
    }

    #[test]
    fn file_values_are_expanded_once_with_the_other_layers() {
        // SAFETY of the test: the variable names are unique to this test.
        unsafe { std::env::set_var("STRATA_TEST_PROPS_PW", "s3cret${env:STRATA_TEST_PROPS_PW}") };
        let file = parse("sasl.password=${env:STRATA_TEST_PROPS_PW}\n").unwrap();
        assert_eq!(file.properties[0].value, "${env:STRATA_TEST_PROPS_PW}");
        let config = KafkaLayers::new(None, [])
            .with_file(&file)
            .config("b:9092")
            .unwrap();
        assert_eq!(
            config.properties["sasl.password"], "s3cret${env:STRATA_TEST_PROPS_PW}",
            "a variable's value is not expanded again"
        );
    }

    #[test]
    fn secret_values_never_print() {
        let file = parse("sasl.password=hunter2\nssl.key.pem=PRIVATE\nlinger.ms=5\n").unwrap();
        let layers = KafkaLayers::new(None, []).with_file(&file);
        let shown = format!("{file:?} {layers:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        assert!(
            shown.contains("linger.ms") && shown.contains('5'),
            "{shown}"
        );
        let config = layers.config("b:9092").unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
