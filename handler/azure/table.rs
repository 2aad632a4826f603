//! The `{"columns":[{"name","type"}],"rows":[[…]]}` tables of Resource Graph's `table`
//! result format and of every Logs query answer.

/// The column names and rows of a `{"columns":[{"name","type"}],"rows":[[…]]}` table (the
/// shape of Resource Graph's `table` format and of every Logs table); every row as long as
/// the columns.
pub(crate) fn read_table(
    table: &serde_json::Value,
) -> Result<(Vec<String>, Vec<Vec<serde_json::Value>>), String> {
    let columns = table
        .get("columns")
        .and_then(|c| c.as_array())
        .ok_or("a table without a `columns` array")?
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("a column without a name: {c}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = table
        .get("rows")
        .and_then(|r| r.as_array())
        .ok_or("a table without a `rows` array")?
        .iter()
        .map(|row| {
            row.as_array()
                .filter(|cells| cells.len() == columns.len())
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "a row that does not match the {} columns: {row}",
                        columns.len()
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((columns, rows))
}
