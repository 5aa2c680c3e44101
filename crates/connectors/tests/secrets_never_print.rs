//! Config structs that hold credentials print them as `***` in `Debug` (which is what error
//! reports, logs and panics use), and registry errors never repeat a URL's password.

use strata_connectors::mysql_cdc::MysqlCdcConfig;
use strata_connectors::registry::client::{RegistryClient, RegistryConfig};

const SECRET: &str = "hunter2-SECRET";

#[test]
fn mysql_cdc_config_debug_redacts_every_credential() {
    let yaml = format!(
        "url: mysql://cdc:{SECRET}@127.0.0.1:3306\npassword: {SECRET}\ntables: [shop.orders]\n\
         state_file: s.json\nkafka_properties: {{sasl.password: {SECRET}, sasl.username: u}}\n"
    );
    let config = MysqlCdcConfig::from_yaml(&yaml).expect("config");
    assert_eq!(config.password.as_ref().map(|p| p.expose()), Some(SECRET));
    let shown = format!("{config:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("mysql://cdc:***@127.0.0.1:3306"), "{shown}");
    assert!(shown.contains("sasl.username"), "{shown}");
}

#[tokio::test]
async fn registry_config_and_errors_never_show_the_password() {
    // Port 9 (discard) on localhost: nothing listens, so the request fails fast.
    let config = RegistryConfig::new(format!("http://sr-user:{SECRET}@127.0.0.1:9"))
        .with_basic_auth("key", SECRET);
    let shown = format!("{config:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    let client = RegistryClient::new(config).expect("client");
    let err = client.schema_by_id(1).await.expect_err("nothing listens");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("127.0.0.1:9"), "{text}");
}

#[test]
fn kafka_settings_never_show_a_secret_value() {
    use strata_connectors::kafka::{KafkaConfig, KafkaLayers, KafkaPropertiesFile};
    let file = KafkaPropertiesFile::parse(
        "client.properties",
        &format!("sasl.username=u\nsasl.password={SECRET}\nssl.key.password={SECRET}\n"),
    )
    .expect("parses");
    let layers = KafkaLayers::new(None, []).with_file(&file);
    let config: KafkaConfig = layers.clone().config("b:9092").expect("config");
    let shown = format!("{file:?} {layers:?} {config:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("sasl.username"), "{shown}");
}
