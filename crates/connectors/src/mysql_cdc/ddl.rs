//! Table schemas from DDL text: the `CREATE TABLE` / `ALTER TABLE` / `DROP TABLE` statements
//! of archived binlog files (query events), and a declared schema file (`mysqldump --no-data`
//! output), parsed with sqlparser's MySQL dialect.
//!
//! Why: a binlog written with `binlog_row_metadata=MINIMAL` (the default before MySQL 8.0.x
//! users turned on FULL, and MariaDB's default) has no column names in its TABLE_MAP events. A
//! live reader asks `information_schema`; archived files have no server, so their columns come
//! from the DDL that created them — in the same files when the backup starts early enough, or
//! from a schema the user declares.
//!
//! What is understood: columns (type, `UNSIGNED`, precision, ENUM / SET labels, `CHARACTER
//! SET`), the primary key (inline or as a constraint), the table's default charset; ALTER
//! TABLE's ADD / DROP / MODIFY / CHANGE / RENAME COLUMN (with FIRST / AFTER), primary key
//! changes and index changes (no effect on columns). Any other ALTER of a known table, and DDL
//! the parser cannot read that names a known table, forget its schema: a later rows event of
//! it then fails with the statement named, rather than being read with a stale column list.

use std::collections::HashMap;

use sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, CreateTable, DataType, Expr, MySQLColumnPosition,
    ObjectName, Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use super::schema::{Column, TableSchema, column_from_info};

/// Schemas keyed by `(db, table)`, kept up to date by DDL.
#[derive(Debug, Clone, Default)]
pub struct DdlSchemas {
    tables: HashMap<(String, String), TableSchema>,
    /// Why a table's schema was forgotten (the statement), for the error at its next row.
    forgotten: HashMap<(String, String), String>,
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '`' || c == '"').to_string()
}

/// `(db, table)` of a possibly qualified name; `default_db` when unqualified.
fn table_key(name: &ObjectName, default_db: &str) -> (String, String) {
    let parts: Vec<String> = name.0.iter().map(|p| unquote(&p.to_string())).collect();
    match parts.as_slice() {
        [db, table] => (db.clone(), table.clone()),
        [.., table] => (default_db.to_string(), table.clone()),
        [] => (default_db.to_string(), String::new()),
    }
}

fn charset_after(text: &str, keyword: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(keyword)? + keyword.len();
    let rest = lower[at..].trim_start_matches([' ', '=']);
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// A column from its definition; `table_charset` applies to string columns without their own.
fn column_of(
    name: &str,
    data_type: &DataType,
    options: &[ColumnOption],
    table_charset: Option<&str>,
) -> Column {
    let column_type = data_type.to_string().to_ascii_lowercase();
    let base: String = column_type
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let base = match base.as_str() {
        "integer" => "int".to_string(),
        "bool" | "boolean" => "tinyint".to_string(),
        "character" | "nchar" => "char".to_string(),
        "nvarchar" => "varchar".to_string(),
        _ => base,
    };
    let fsp = if matches!(base.as_str(), "datetime" | "timestamp" | "time") {
        column_type
            .split_once('(')
            .and_then(|(_, r)| r.split(')').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    let mut column = column_from_info(&unquote(name), &base, &column_type, fsp);
    let own_charset = options.iter().find_map(|o| match o {
        ColumnOption::CharacterSet(cs) => Some(unquote(&cs.to_string()).to_ascii_lowercase()),
        _ => None,
    });
    let own_charset = own_charset.or_else(|| charset_after(&column_type, "character set"));
    let textual = matches!(
        base.as_str(),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
    );
    if textual {
        column.charset = own_charset.or_else(|| table_charset.map(str::to_string));
    }
    column
}

fn is_primary(options: &[ColumnOption]) -> bool {
    options
        .iter()
        .any(|o| matches!(o, ColumnOption::PrimaryKey(_)))
}

fn key_columns(constraint: &TableConstraint) -> Option<Vec<String>> {
    match constraint {
        TableConstraint::PrimaryKey(pk) => Some(
            pk.columns
                .iter()
                .map(|c| unquote(&c.column.expr.to_string()))
                .collect(),
        ),
        _ => None,
    }
}

fn options_of(def: &ColumnDef) -> Vec<ColumnOption> {
    def.options.iter().map(|o| o.option.clone()).collect()
}

fn schema_of(create: &CreateTable, key: &(String, String)) -> TableSchema {
    let table_charset = charset_after(&create.table_options.to_string(), "charset")
        .or_else(|| charset_after(&create.table_options.to_string(), "character set"));
    let mut primary_key: Vec<String> = Vec::new();
    let mut columns = Vec::with_capacity(create.columns.len());
    for def in &create.columns {
        let options = options_of(def);
        let column = column_of(
            &def.name.to_string(),
            &def.data_type,
            &options,
            table_charset.as_deref(),
        );
        if is_primary(&options) {
            primary_key.push(column.name.clone());
        }
        columns.push(column);
    }
    for c in &create.constraints {
        if let Some(k) = key_columns(c) {
            primary_key = k;
        }
    }
    // A functional key part (`INDEX i ((a + 1))`, MySQL 8.0.13+) is a hidden generated column,
    // placed after the columns the statement creates and logged in the binlog like one.
    for c in &create.constraints {
        let (name, parts) = match c {
            TableConstraint::Index(i) => (i.name.as_ref(), &i.columns),
            TableConstraint::Unique(u) => (u.name.as_ref(), &u.columns),
            _ => continue,
        };
        for (n, part) in parts.iter().enumerate() {
            if !matches!(part.column.expr, Expr::Identifier(_)) {
                let index = name.map(|n| unquote(&n.to_string())).unwrap_or_default();
                columns.push(hidden_column(&format!("{HIDDEN_PREFIX}{index}!{n}!0")));
            }
        }
    }
    TableSchema {
        db: key.0.clone(),
        table: key.1.clone(),
        columns,
        primary_key,
    }
}

/// MySQL's name prefix of hidden columns (functional key parts): never in change events.
pub const HIDDEN_PREFIX: &str = "!hidden!";

fn hidden_column(name: &str) -> Column {
    column_from_info(name, "bigint", "bigint", 0)
}

fn place(columns: &mut Vec<Column>, column: Column, position: &Option<MySQLColumnPosition>) {
    let at = match position {
        Some(MySQLColumnPosition::First) => 0,
        Some(MySQLColumnPosition::After(name)) => {
            let name = unquote(&name.to_string());
            columns
                .iter()
                .position(|c| c.name == name)
                .map_or(columns.len(), |i| i + 1)
        }
        None => columns.len(),
    };
    columns.insert(at, column);
}

/// Applies one ALTER operation; `false` when it is not understood (the schema is forgotten).
fn alter(schema: &mut TableSchema, op: &AlterTableOperation) -> bool {
    match op {
        AlterTableOperation::AddColumn {
            column_def,
            column_position,
            ..
        } => {
            let options = options_of(column_def);
            let column = column_of(
                &column_def.name.to_string(),
                &column_def.data_type,
                &options,
                None,
            );
            if is_primary(&options) {
                schema.primary_key = vec![column.name.clone()];
            }
            place(&mut schema.columns, column, column_position);
            true
        }
        AlterTableOperation::DropColumn { column_names, .. } => {
            for name in column_names {
                let name = unquote(&name.to_string());
                schema.columns.retain(|c| c.name != name);
                schema.primary_key.retain(|c| *c != name);
            }
            true
        }
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            options,
            column_position,
        } => rename_and_retype(
            schema,
            &col_name.to_string(),
            &col_name.to_string(),
            data_type,
            options,
            column_position,
        ),
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            column_position,
        } => rename_and_retype(
            schema,
            &old_name.to_string(),
            &new_name.to_string(),
            data_type,
            options,
            column_position,
        ),
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let (old, new) = (
                unquote(&old_column_name.to_string()),
                unquote(&new_column_name.to_string()),
            );
            for c in &mut schema.columns {
                if c.name == old {
                    c.name = new.clone();
                }
            }
            for k in &mut schema.primary_key {
                if *k == old {
                    *k = new.clone();
                }
            }
            true
        }
        AlterTableOperation::AddConstraint { constraint, .. } => {
            if let Some(k) = key_columns(constraint) {
                schema.primary_key = k;
            }
            true
        }
        AlterTableOperation::DropPrimaryKey { .. } => {
            schema.primary_key.clear();
            true
        }
        AlterTableOperation::DropIndex { .. } => true,
        _ => false,
    }
}

fn rename_and_retype(
    schema: &mut TableSchema,
    old: &str,
    new: &str,
    data_type: &DataType,
    options: &[ColumnOption],
    position: &Option<MySQLColumnPosition>,
) -> bool {
    let old = unquote(old);
    let Some(i) = schema.columns.iter().position(|c| c.name == old) else {
        return false;
    };
    let charset = schema.columns[i].charset.clone();
    let mut column = column_of(new, data_type, options, charset.as_deref());
    if column.charset.is_none() {
        column.charset = charset;
    }
    schema.columns.remove(i);
    for k in &mut schema.primary_key {
        if *k == old {
            *k = column.name.clone();
        }
    }
    match position {
        None => schema.columns.insert(i, column),
        Some(_) => place(&mut schema.columns, column, position),
    }
    true
}

impl DdlSchemas {
    /// Schemas declared in `text` (`CREATE TABLE` statements, `USE db;` switching the default
    /// database); `default_db` for unqualified names. Errors name the statement.
    pub fn declared(text: &str, default_db: &str) -> Result<Self, String> {
        let mut schemas = DdlSchemas::default();
        let statements = Parser::parse_sql(&MySqlDialect {}, text)
            .map_err(|e| format!("the schema file does not parse as MySQL DDL: {e}"))?;
        let mut db = default_db.to_string();
        for statement in &statements {
            match statement {
                Statement::Use(u) => {
                    db = unquote(u.to_string().trim_start_matches("USE "));
                }
                other => schemas.apply_statement(other, &db),
            }
        }
        Ok(schemas)
    }

    /// Applies a query event's statement (default database `db`); statements that are not DDL
    /// of a table are ignored.
    pub fn apply(&mut self, db: &str, sql: &str) {
        match Parser::parse_sql(&MySqlDialect {}, sql) {
            Ok(statements) => {
                for s in &statements {
                    self.apply_statement(s, db);
                }
            }
            Err(_) => {
                // Not understood: if it names a known table, that table's schema is unknown now.
                let lower = sql.to_ascii_lowercase();
                let is_ddl = ["create", "alter", "drop", "rename"]
                    .iter()
                    .any(|k| lower.trim_start().starts_with(k));
                if is_ddl {
                    let hit: Vec<(String, String)> = self
                        .tables
                        .keys()
                        .filter(|(_, t)| lower.contains(&t.to_ascii_lowercase()))
                        .cloned()
                        .collect();
                    for key in hit {
                        self.forget(key, sql);
                    }
                }
            }
        }
    }

    fn forget(&mut self, key: (String, String), sql: &str) {
        self.tables.remove(&key);
        let statement: String = sql.chars().take(200).collect();
        self.forgotten.insert(key, statement);
    }

    fn apply_statement(&mut self, statement: &Statement, db: &str) {
        match statement {
            Statement::CreateTable(create) => {
                let key = table_key(&create.name, db);
                if create.query.is_some() || create.like.is_some() {
                    self.forget(key, &statement.to_string());
                    return;
                }
                let schema = schema_of(create, &key);
                self.forgotten.remove(&key);
                self.tables.insert(key, schema);
            }
            Statement::AlterTable(a) => {
                let key = table_key(&a.name, db);
                let Some(mut schema) = self.tables.remove(&key) else {
                    return;
                };
                let mut understood = true;
                let mut new_key = key.clone();
                for op in &a.operations {
                    if let AlterTableOperation::RenameTable { table_name } = op {
                        let name = table_name.to_string();
                        let name = name.trim_start_matches("TO ").trim_start_matches("AS ");
                        let parts: Vec<&str> = name.split('.').collect();
                        new_key = match parts.as_slice() {
                            [d, t] => (unquote(d), unquote(t)),
                            _ => (key.0.clone(), unquote(name)),
                        };
                        continue;
                    }
                    understood &= alter(&mut schema, op);
                }
                if understood {
                    schema.db = new_key.0.clone();
                    schema.table = new_key.1.clone();
                    self.tables.insert(new_key, schema);
                } else {
                    self.forget(key, &statement.to_string());
                }
            }
            Statement::Drop { names, .. } => {
                for name in names {
                    let key = table_key(name, db);
                    self.tables.remove(&key);
                }
            }
            _ => {}
        }
    }

    /// The schema of `(db, table)`, if known.
    pub fn get(&self, key: &(String, String)) -> Option<&TableSchema> {
        self.tables.get(key)
    }

    /// The statement that made `key`'s schema unknown, if any.
    pub fn forgotten_by(&self, key: &(String, String)) -> Option<&str> {
        self.forgotten.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql_cdc::schema::Kind;

    fn key(t: &str) -> (String, String) {
        ("shop".into(), t.into())
    }

    #[test]
    fn create_table_gives_types_labels_charsets_and_the_key() {
        let s = DdlSchemas::declared(
            "CREATE TABLE `orders` (
               `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
               `status` ENUM('new','paid','it''s') NOT NULL,
               `tags` SET('a','b') DEFAULT NULL,
               `note` VARCHAR(300) CHARACTER SET latin1,
               `body` TEXT,
               `raw` VARBINARY(16),
               `at` DATETIME(3),
               `amount` DECIMAL(12,2),
               PRIMARY KEY (`id`)
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;",
            "shop",
        )
        .unwrap();
        let t = s.get(&key("orders")).unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id", "status", "tags", "note", "body", "raw", "at", "amount"
            ]
        );
        assert_eq!(t.primary_key, ["id"]);
        let c = |n: &str| t.column(n).unwrap();
        assert!(c("id").unsigned && c("id").kind == Kind::Int);
        assert_eq!(c("status").labels, ["new", "paid", "it's"]);
        assert_eq!(c("tags").kind, Kind::Set);
        assert_eq!(c("note").charset.as_deref(), Some("latin1"));
        assert_eq!(c("body").charset.as_deref(), Some("utf8mb4"));
        assert_eq!(c("raw").kind, Kind::Bytes);
        assert_eq!((c("at").kind, c("at").fsp), (Kind::DateTime, 3));
        assert_eq!(c("amount").kind, Kind::Decimal);
    }

    #[test]
    fn functional_key_parts_are_hidden_columns_where_mysql_logs_them() {
        // MySQL 8.0.17 logged this table's rows as (a, the hidden column, b).
        let mut s = DdlSchemas::default();
        s.apply("test", "CREATE TABLE t (a INT, INDEX i((a+1)))");
        s.apply("test", "ALTER TABLE t ADD COLUMN b TEXT");
        let t = s.get(&("test".into(), "t".into())).unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "!hidden!i!0!0", "b"]);
    }

    #[test]
    fn alter_table_follows_the_columns_and_unknown_alters_forget() {
        let mut s = DdlSchemas::default();
        s.apply("shop", "CREATE TABLE t (a INT PRIMARY KEY, b TEXT)");
        s.apply(
            "shop",
            "ALTER TABLE t ADD COLUMN c INT FIRST, ADD COLUMN d DATE AFTER a",
        );
        s.apply(
            "shop",
            "ALTER TABLE t DROP COLUMN b, CHANGE COLUMN d e DATETIME(6)",
        );
        let t = s.get(&key("t")).unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["c", "a", "e"]);
        assert_eq!(t.column("e").unwrap().fsp, 6);
        s.apply("shop", "ALTER TABLE shop.t RENAME COLUMN a TO id");
        assert_eq!(s.get(&key("t")).unwrap().primary_key, ["id"]);
        s.apply("shop", "ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4");
        assert!(s.get(&key("t")).is_none());
        assert!(s.forgotten_by(&key("t")).is_some());
        s.apply("shop", "CREATE TABLE t (x INT)");
        s.apply("shop", "DROP TABLE t");
        assert!(s.get(&key("t")).is_none());
        // Not DDL, or DDL of other tables: nothing changes.
        s.apply("shop", "CREATE TABLE u (x INT)");
        s.apply("shop", "INSERT INTO u VALUES (1)");
        s.apply("other", "DROP TABLE u");
        assert!(s.get(&key("u")).is_some());
    }
}
