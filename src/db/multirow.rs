//! PostgreSQL `executemany` of a plain `INSERT ... VALUES ($1, ..., $n)`
//! as multi-row INSERTs: the server runs one statement per group of rows
//! instead of one per row, which is most of its work for small rows.
//!
//! Only a statement this module fully understands is rewritten: `INSERT`,
//! no comments, string literals or dollar quotes outside the VALUES group,
//! a group of bare (optionally cast) parameters, and after it nothing,
//! `RETURNING` or `ON CONFLICT ... DO NOTHING` (`DO UPDATE` may not touch
//! one row twice in one statement, which a batch of rows may ask for).

/// Rows per statement: a power of two, at most this many, and at most
/// [`MAX_PARAMS`] parameters.
pub(crate) const MAX_GROUP: usize = 1024;
/// Fewer rows than this go as single-row statements.
pub(crate) const MIN_GROUP: usize = 8;
/// Parameters per statement (the protocol counts them in an i16 for some
/// servers and poolers; PostgreSQL itself takes 65,535).
const MAX_PARAMS: usize = 32_767;

/// A single-row INSERT split around its VALUES group.
#[derive(Debug, PartialEq)]
pub(crate) struct MultiRow<'a> {
    /// Up to and including `VALUES`.
    head: &'a str,
    /// The group's items: parameter number and what follows it (a cast).
    items: Vec<(usize, &'a str)>,
    /// After the group (without a trailing `;`).
    tail: &'a str,
    params: usize,
}

/// The statements an executemany of `rows` rows runs: `(rows per
/// statement, how many times)`, largest first; the 1-row statement is the
/// original one.
pub(crate) fn plan(rows: usize, params: usize) -> Vec<(usize, usize)> {
    let cap = MAX_GROUP.min(MAX_PARAMS / params.max(1));
    let full = if cap == 0 { 1 } else { 1 << cap.ilog2() };
    let mut out = Vec::new();
    if full < MIN_GROUP {
        return vec![(1, rows)];
    }
    let mut left = rows;
    let mut size = full;
    while size >= MIN_GROUP && left > 0 {
        let times = left / size;
        if times > 0 {
            out.push((size, times));
            left -= times * size;
        }
        size /= 2;
    }
    if left > 0 {
        out.push((1, left));
    }
    out
}

impl<'a> MultiRow<'a> {
    /// `sql` split for the rewrite, or None when it is not a statement this
    /// module may rewrite. `params` is how many parameters it has.
    pub(crate) fn of(sql: &'a str, params: usize) -> Option<Self> {
        if params == 0 {
            return None;
        }
        let start = sql.len() - sql.trim_start().len();
        if !keyword_at(sql, start, "INSERT") {
            return None;
        }
        let values = find_values(sql, start)?;
        let head = &sql[..values + "VALUES".len()];
        let rest = &sql[values + "VALUES".len()..];
        let open = values + "VALUES".len() + (rest.len() - rest.trim_start().len());
        if sql.as_bytes().get(open) != Some(&b'(') {
            return None;
        }
        let close = open + sql[open..].find(')')?;
        let mut items = Vec::new();
        for item in sql[open + 1..close].split(',') {
            items.push(param_item(item.trim(), params)?);
        }
        let tail = sql[close + 1..].trim_end();
        let tail = tail.strip_suffix(';').unwrap_or(tail);
        if !tail_ok(tail) {
            return None;
        }
        Some(MultiRow {
            head,
            items,
            tail,
            params,
        })
    }

    /// The statement inserting `rows` rows: the group repeated, parameters
    /// numbered on (row r's `$k` is `$(k + r * params)`).
    pub(crate) fn statement(&self, rows: usize) -> String {
        let mut out =
            String::with_capacity(self.head.len() + self.tail.len() + rows * 8 * self.items.len());
        out.push_str(self.head);
        out.push(' ');
        for r in 0..rows {
            out.push_str(if r == 0 { "(" } else { ",(" });
            for (i, (k, after)) in self.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('$');
                out.push_str(itoa::Buffer::new().format(k + r * self.params));
                out.push_str(after);
            }
            out.push(')');
        }
        out.push_str(self.tail);
        out
    }
}

/// Whether `sql[at..]` starts with `word` (any case) as a whole word.
fn keyword_at(sql: &str, at: usize, word: &str) -> bool {
    let b = sql.as_bytes();
    b.len() >= at + word.len()
        && b[at..at + word.len()].eq_ignore_ascii_case(word.as_bytes())
        && !b.get(at + word.len()).is_some_and(|&c| is_ident(c))
        && (at == 0 || !is_ident(b[at - 1]))
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Where the first `VALUES` keyword is, scanning from `from` over quoted
/// identifiers; None at anything this module does not follow (strings,
/// comments, parameters, a second statement, a SELECT).
fn find_values(sql: &str, from: usize) -> Option<usize> {
    let b = sql.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while *b.get(i)? != b'"' {
                    i += 1;
                }
            }
            b'\'' | b'$' | b';' => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            c if c.is_ascii_alphabetic() && (i == 0 || !is_ident(b[i - 1])) => {
                if keyword_at(sql, i, "VALUES") {
                    return Some(i);
                }
                if keyword_at(sql, i, "SELECT") || keyword_at(sql, i, "DEFAULT") {
                    return None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// One item of the VALUES group: `$k` with an optional `::type` after it.
fn param_item(item: &str, params: usize) -> Option<(usize, &str)> {
    let digits = item.strip_prefix('$')?;
    let end = digits
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let k: usize = digits[..end].parse().ok()?;
    if k == 0 || k > params {
        return None;
    }
    let after = &digits[end..];
    let cast_ok = after.is_empty()
        || after.strip_prefix("::").is_some_and(|t| {
            !t.trim().is_empty()
                && t.bytes().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, b'_' | b' ' | b'.' | b'[' | b']' | b'"')
                })
        });
    cast_ok.then_some((k, after))
}

/// What may follow the group: nothing, `RETURNING ...`, or `ON CONFLICT
/// ... DO NOTHING [RETURNING ...]`, with no strings, comments, parameters,
/// subqueries or updates.
fn tail_ok(tail: &str) -> bool {
    let t = tail.trim();
    if t.is_empty() {
        return true;
    }
    if t.contains(['\'', '$', ';']) || t.contains("--") || t.contains("/*") {
        return false;
    }
    let words: Vec<String> = t
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    if words
        .iter()
        .any(|w| w == "SELECT" || w == "UPDATE" || w == "VALUES")
    {
        return false;
    }
    match words.first().map(String::as_str) {
        Some("RETURNING") => true,
        Some("ON") => {
            words.get(1).map(String::as_str) == Some("CONFLICT")
                && words.windows(2).any(|w| w[0] == "DO" && w[1] == "NOTHING")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{plan, MultiRow};

    #[test]
    fn plain_insert_is_rewritten_with_parameters_numbered_on() {
        let m = MultiRow::of("INSERT INTO t (a, b) VALUES ($1, $2::int)", 2).unwrap();
        assert_eq!(
            m.statement(3),
            "INSERT INTO t (a, b) VALUES ($1,$2::int),($3,$4::int),($5,$6::int)"
        );
        let m = MultiRow::of(
            "insert into \"Odd;Name\" values ($2, $1) on conflict (a) do nothing returning a;",
            2,
        )
        .unwrap();
        assert_eq!(
            m.statement(2),
            "insert into \"Odd;Name\" values ($2,$1),($4,$3) on conflict (a) do nothing returning a"
        );
    }

    #[test]
    fn anything_else_is_left_alone() {
        for sql in [
            "UPDATE t SET a = $1",
            "INSERT INTO t SELECT $1",
            "INSERT INTO t VALUES ($1, 'x')",
            "INSERT INTO t VALUES ($1, now())",
            "INSERT INTO t VALUES ($1, DEFAULT)",
            "INSERT INTO t VALUES ($1), ($2)",
            "INSERT INTO t VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = 1",
            "INSERT INTO t VALUES ($1) RETURNING (SELECT 1)",
            "INSERT INTO t VALUES ($1); DELETE FROM t",
            "INSERT INTO t /* c */ VALUES ($1)",
            "INSERT INTO t VALUES ($1) -- c",
            "INSERT INTO t VALUES ($2)",
            "INSERT INTO t VALUES ($1::varchar(3))",
            "WITH x AS (SELECT 1) INSERT INTO t VALUES ($1)",
            "INSERT INTO t DEFAULT VALUES",
        ] {
            assert_eq!(MultiRow::of(sql, 1), None, "{sql}");
        }
    }

    #[test]
    fn plan_uses_powers_of_two_then_single_rows() {
        assert_eq!(
            plan(10_000, 3),
            vec![(1024, 9), (512, 1), (256, 1), (16, 1)]
        );
        assert_eq!(plan(5, 3), vec![(1, 5)]);
        assert_eq!(plan(100, 3), vec![(64, 1), (32, 1), (1, 4)]);
        // 32,767 parameters at most per statement.
        assert_eq!(plan(100, 5000), vec![(1, 100)]);
        assert_eq!(plan(100, 1000), vec![(32, 3), (1, 4)]);
        assert_eq!(plan(100, 2000), vec![(16, 6), (1, 4)]);
        assert_eq!(plan(100, 4000), vec![(8, 12), (1, 4)]);
    }
}
