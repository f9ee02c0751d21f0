//! `--output json|table`.

use serde::Serialize;
use serde_json::Value;

/// Output format of admin commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// One JSON document on stdout (for scripts).
    Json,
    /// An aligned table (for people).
    Table,
}

/// Prints `value` as JSON, or as a table of `columns` (an object is one row).
pub(crate) fn print<T: Serialize>(out: Output, value: &T, columns: &[&str]) -> anyhow::Result<()> {
    let v = serde_json::to_value(value)?;
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Output::Table => {
            let rows: Vec<&Value> = match &v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let cell = |row: &Value, c: &str| match row.get(c) {
                None | Some(Value::Null) => "-".to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                Some(other) => other.to_string(),
            };
            let widths: Vec<usize> = columns
                .iter()
                .map(|c| {
                    rows.iter()
                        .map(|r| cell(r, c).chars().count())
                        .max()
                        .unwrap_or(0)
                        .max(c.len())
                })
                .collect();
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            println!(
                "{}",
                line(columns.iter().map(|c| c.to_uppercase()).collect())
            );
            for r in rows {
                println!("{}", line(columns.iter().map(|c| cell(r, c)).collect()));
            }
        }
    }
    Ok(())
}
