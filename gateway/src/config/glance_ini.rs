//! Reading an oslo.config INI file (`glance-api.conf`) the way oslo.config reads it: the
//! syntax of `oslo_config/iniparser.py`, the section and key rules of `oslo_config/cfg.py`'s
//! `ConfigParser`, its `$name` interpolation, and the value types of `oslo_config/types.py`.
//!
//! - A line `[name]` starts a section. Section names are compared in lower case, except
//!   `DEFAULT`, which is itself only in capitals (`[Glance_Store]` is `[glance_store]`).
//! - `key = value` or `key: value` (whichever of `=` and `:` comes first). Key and value are
//!   trimmed; a value wholly enclosed in one kind of quotes loses them. `#` or `;` start a
//!   comment only at the start of a line: elsewhere they are part of the value.
//! - A line that starts with a space or tab continues the previous value (joined with a
//!   newline); a blank line ends it.
//! - A key given twice keeps every value; an option reads the last one.
//! - In a value, `$name` and `${name}` stand for another option's value (the same section
//!   first, then `[DEFAULT]`; `${section.name}` names the section), `$$` and `\$` for a
//!   dollar sign. A name that no option of the file has is left as written (oslo would use
//!   the option's default, which only Glance knows).
//! - Booleans are `true`/`1`/`on`/`yes` and `false`/`0`/`off`/`no` in any case; integers as
//!   Python writes them (sign, `_` between digits; empty means unset); lists split on commas
//!   (a trailing comma ignored); dicts are `key:value` pairs split on commas.
//!
//! Errors name the file, the line and the key, never the value: a value may be a password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file oslo.config could not parse, or a value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", location(.path, *.line))]
pub struct IniError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when the error has one.
    pub line: Option<usize>,
    /// What is wrong (never the value itself).
    pub message: String,
}

fn location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{} line {line}", path.display()),
        None => path.display().to_string(),
    }
}

/// One `key = value` of a section, as written (before interpolation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, trimmed.
    pub key: String,
    /// The value: trimmed, unquoted, continuation lines joined with `\n`.
    pub raw: String,
    /// The 1-based line of the key.
    pub line: usize,
}

/// One section: its name as first written and its entries in file order (a repeated key
/// appears once per time it was given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// The name as written the first time (`[Glance_Store]`).
    pub written: String,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
}

/// A parsed oslo.config INI file.
#[derive(Debug, Clone)]
pub struct IniFile {
    path: PathBuf,
    /// By normalized name (lower case, `DEFAULT` as is).
    sections: BTreeMap<String, Section>,
}

/// A value read from the file, after interpolation, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The text after interpolation.
    pub text: String,
    /// The 1-based line of its key.
    pub line: usize,
}

/// oslo's section-name rule.
pub fn normalize_section(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_owned()
    } else {
        name.to_lowercase()
    }
}

/// How deep `$name` may refer to values that themselves refer to others.
const MAX_INTERPOLATION_DEPTH: usize = 16;

impl IniFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<IniFile, IniError> {
        let text = std::fs::read_to_string(path).map_err(|e| IniError {
            path: path.to_owned(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        IniFile::parse(&text, path)
    }

    /// Parses `text` (the file named `path` in messages).
    pub fn parse(text: &str, path: &Path) -> Result<IniFile, IniError> {
        let error = |line: usize, message: &str| IniError {
            path: path.to_owned(),
            line: Some(line),
            message: message.to_owned(),
        };
        let mut sections: BTreeMap<String, Section> = BTreeMap::new();
        let mut current: Option<String> = None;
        // The assignment being read: its key, line and value lines.
        let mut pending: Option<(String, usize, Vec<String>)> = None;
        let flush = |sections: &mut BTreeMap<String, Section>,
                     current: &Option<String>,
                     pending: &mut Option<(String, usize, Vec<String>)>|
         -> Result<(), IniError> {
            if let Some((key, line, lines)) = pending.take() {
                let Some(section) = current else {
                    return Err(error(line, "Section must be started before assignment"));
                };
                let entry = Entry {
                    key,
                    raw: lines.join("\n"),
                    line,
                };
                sections
                    .get_mut(section)
                    .expect("the current section was created when it started")
                    .entries
                    .push(entry);
            }
            Ok(())
        };
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim_end();
            if line.is_empty() {
                flush(&mut sections, &current, &mut pending)?;
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match &mut pending {
                    Some((_, _, lines)) => lines.push(line.trim_start().to_owned()),
                    None => return Err(error(number, "Unexpected continuation line")),
                }
                continue;
            }
            flush(&mut sections, &current, &mut pending)?;
            if line.starts_with('[') {
                if !line.ends_with(']') {
                    return Err(error(number, "Invalid section (must end with ])"));
                }
                if line.len() <= 2 {
                    return Err(error(number, "Empty section name"));
                }
                let written = &line[1..line.len() - 1];
                let normalized = normalize_section(written);
                sections
                    .entry(normalized.clone())
                    .or_insert_with(|| Section {
                        written: written.to_owned(),
                        entries: Vec::new(),
                    });
                current = Some(normalized);
            } else if line.starts_with(['#', ';']) {
                // A comment.
            } else {
                let (key, value) = split_key_value(line)
                    .ok_or_else(|| error(number, "No ':' or '=' found in assignment"))?;
                if key.is_empty() {
                    return Err(error(number, "Key cannot be empty"));
                }
                pending = Some((key.to_owned(), number, vec![value]));
            }
        }
        flush(&mut sections, &current, &mut pending)?;
        Ok(IniFile {
            path: path.to_owned(),
            sections,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every section, by normalized name.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.sections.iter().map(|(name, s)| (name.as_str(), s))
    }

    /// Whether the file has section `section` (any spelling oslo takes for it).
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(&normalize_section(section))
    }

    /// The last entry of `key` in `section`, before interpolation.
    pub fn entry(&self, section: &str, key: &str) -> Option<&Entry> {
        self.sections
            .get(&normalize_section(section))?
            .entries
            .iter()
            .rev()
            .find(|e| e.key == key)
    }

    /// The value of `key` in `section` (its last occurrence), interpolated.
    pub fn get(&self, section: &str, key: &str) -> Result<Option<Value>, IniError> {
        let Some(entry) = self.entry(section, key) else {
            return Ok(None);
        };
        let text = self.substitute(&normalize_section(section), &entry.raw, entry.line, 0)?;
        Ok(Some(Value {
            text,
            line: entry.line,
        }))
    }

    /// Every value of `key` in `section`, in file order, interpolated (a multi-valued
    /// option).
    pub fn get_all(&self, section: &str, key: &str) -> Result<Vec<Value>, IniError> {
        let section = normalize_section(section);
        let Some(found) = self.sections.get(&section) else {
            return Ok(Vec::new());
        };
        found
            .entries
            .iter()
            .filter(|e| e.key == key)
            .map(|e| {
                Ok(Value {
                    text: self.substitute(&section, &e.raw, e.line, 0)?,
                    line: e.line,
                })
            })
            .collect()
    }

    fn error(&self, line: usize, message: String) -> IniError {
        IniError {
            path: self.path.clone(),
            line: Some(line),
            message,
        }
    }

    /// oslo's `string.Template(...).safe_substitute` with option values as the mapping.
    fn substitute(
        &self,
        section: &str,
        text: &str,
        line: usize,
        depth: usize,
    ) -> Result<String, IniError> {
        if !text.contains('$') {
            return Ok(text.to_owned());
        }
        if depth >= MAX_INTERPOLATION_DEPTH {
            return Err(self.error(
                line,
                "`$` references nest too deep (a loop of options naming each other?)".into(),
            ));
        }
        // `\$` is `$$`, as oslo does before substituting.
        let text = text.replace("\\$", "$$");
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) if is_identifier(&braced[..end]) => (&braced[..end], end + 2),
                    _ => ("", 0),
                }
            } else {
                let len = identifier_len(after);
                (&after[..len], len)
            };
            if name.is_empty() {
                // Not a placeholder: safe_substitute leaves the `$` alone.
                out.push('$');
                rest = after;
                continue;
            }
            match self.lookup(section, name) {
                Some((value_section, entry)) => {
                    let value =
                        self.substitute(&value_section, &entry.raw, entry.line, depth + 1)?;
                    out.push_str(&value);
                }
                None => out.push_str(&rest[at..at + 1 + consumed]),
            }
            rest = &after[consumed..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The entry `$name` refers to from `section`: `group.option` in that group, else the
    /// option in `section`, else in `[DEFAULT]` (oslo's `StrSubWrapper`).
    fn lookup(&self, section: &str, name: &str) -> Option<(String, &Entry)> {
        if let Some((group, option)) = name.split_once('.') {
            let group = normalize_section(group);
            if let Some(entry) = self.entry(&group, option) {
                return Some((group, entry));
            }
        } else if let Some(entry) = self.entry(section, name) {
            return Some((section.to_owned(), entry));
        }
        self.entry("DEFAULT", name)
            .map(|entry| ("DEFAULT".to_owned(), entry))
    }
}

/// oslo's `_split_key_value`: the first of `=` and `:` splits; a value wholly quoted loses
/// its quotes.
fn split_key_value(line: &str) -> Option<(&str, String)> {
    let at = match (line.find('='), line.find(':')) {
        (Some(equal), Some(colon)) => equal.min(colon),
        (Some(at), None) | (None, Some(at)) => at,
        (None, None) => return None,
    };
    let key = line[..at].trim();
    let mut value = line[at + 1..].trim();
    let quoted = value.len() >= 2
        && (value.starts_with('"') || value.starts_with('\''))
        && value.ends_with(&value[..1]);
    // A lone quote character is "quoted" for oslo too (first == last), and becomes empty.
    if quoted || value == "\"" || value == "'" {
        value = if value.len() >= 2 {
            &value[1..value.len() - 1]
        } else {
            ""
        };
    }
    Some((key, value.to_owned()))
}

/// The length of the identifier `[_a-z][._a-z0-9]*` (any case) at the start of `text`.
fn identifier_len(text: &str) -> usize {
    let mut len = 0;
    for (i, c) in text.char_indices() {
        let ok = if i == 0 {
            c == '_' || c.is_ascii_alphabetic()
        } else {
            c == '_' || c == '.' || c.is_ascii_alphanumeric()
        };
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && identifier_len(text) == text.len()
}

/// oslo's `types.Boolean`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err("not a boolean (true/false, 1/0, on/off, yes/no)".to_owned()),
    }
}

/// oslo's `types.Integer` (Python's `int()`): `None` for an empty value.
pub fn parse_int(text: &str) -> Result<Option<i128>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (negative, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err("not an integer".to_owned());
    }
    let value: i128 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| "not an integer (too large)".to_owned())?;
    Ok(Some(if negative { -value } else { value }))
}

/// oslo's `types.List` of strings.
pub fn parse_list(text: &str) -> Vec<String> {
    let text = text.trim().trim_end_matches(',');
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',').map(|item| item.trim().to_owned()).collect()
}

/// oslo's `types.Dict` of strings (`key:value,key:value`).
pub fn parse_dict(text: &str) -> Result<Vec<(String, String)>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|pair| {
            let (key, value) = pair
                .split_once(':')
                .ok_or_else(|| "not a dict (key:value pairs, comma-separated)".to_owned())?;
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> IniFile {
        IniFile::parse(text, Path::new("glance-api.conf")).unwrap()
    }

    fn get(ini: &IniFile, section: &str, key: &str) -> Option<String> {
        ini.get(section, key).unwrap().map(|v| v.text)
    }

    #[test]
    fn sections_keys_comments_and_quotes_as_oslo_reads_them() {
        let ini = parse(
            "# a comment\n; another\n[DEFAULT]\ndebug = True\nbind_port: 9292\n\
             public_endpoint = http://h:9292/ # not a comment\n\
             [Glance_Store]\nstores = \"file,http\"\ndefault_store='file'\n\
             odd = a=b:c\nempty =\n\n[paste_deploy]\nflavor = keystone\n",
        );
        assert_eq!(get(&ini, "DEFAULT", "debug").as_deref(), Some("True"));
        assert_eq!(get(&ini, "DEFAULT", "bind_port").as_deref(), Some("9292"));
        assert_eq!(
            get(&ini, "DEFAULT", "public_endpoint").as_deref(),
            Some("http://h:9292/ # not a comment")
        );
        assert_eq!(
            get(&ini, "glance_store", "stores").as_deref(),
            Some("file,http")
        );
        assert_eq!(
            get(&ini, "GLANCE_STORE", "default_store").as_deref(),
            Some("file")
        );
        assert_eq!(get(&ini, "glance_store", "odd").as_deref(), Some("a=b:c"));
        assert_eq!(get(&ini, "glance_store", "empty").as_deref(), Some(""));
        assert!(ini.has_section("glance_store"));
        assert!(!ini.has_section("default"), "[default] is not [DEFAULT]");
        let (_, section) = ini.sections().find(|(n, _)| *n == "glance_store").unwrap();
        assert_eq!(section.written, "Glance_Store");
        assert_eq!(ini.entry("paste_deploy", "flavor").unwrap().line, 14);
    }

    #[test]
    fn a_colon_before_the_equals_splits_there() {
        let ini = parse("[DEFAULT]\nurl: http://x = y\n");
        assert_eq!(get(&ini, "DEFAULT", "url").as_deref(), Some("http://x = y"));
    }

    #[test]
    fn continuation_lines_join_until_a_blank_line() {
        let ini = parse("[DEFAULT]\nlong = first\n  second\n\tthird\n\nnext = 1\n");
        assert_eq!(
            get(&ini, "DEFAULT", "long").as_deref(),
            Some("first\nsecond\nthird")
        );
        assert_eq!(get(&ini, "DEFAULT", "next").as_deref(), Some("1"));
    }

    #[test]
    fn repeated_keys_keep_every_value_and_the_last_wins() {
        let ini = parse("[DEFAULT]\nx = 1\n[other]\ny = 2\n[DEFAULT]\nx = 3\n");
        assert_eq!(get(&ini, "DEFAULT", "x").as_deref(), Some("3"));
        let all: Vec<String> = ini
            .get_all("DEFAULT", "x")
            .unwrap()
            .into_iter()
            .map(|v| v.text)
            .collect();
        assert_eq!(all, ["1", "3"]);
    }

    #[test]
    fn interpolation_follows_oslo() {
        let ini = parse(
            "[DEFAULT]\nbase = /var/lib/glance\nport = 9292\n\
             dir = $base/images\nbraced = ${base}x\nurl = http://h:${port}/\n\
             money = $$5 and \\$6\nunknown = $nobody here\nlone = 5$ ok\n\
             [glance_store]\nbase = /srv\nlocal = $base/a\nother = ${DEFAULT.base}/b\n\
             chained = ${glance_store.local}/c\n",
        );
        assert_eq!(
            get(&ini, "DEFAULT", "dir").as_deref(),
            Some("/var/lib/glance/images")
        );
        assert_eq!(
            get(&ini, "DEFAULT", "braced").as_deref(),
            Some("/var/lib/glancex")
        );
        assert_eq!(
            get(&ini, "DEFAULT", "url").as_deref(),
            Some("http://h:9292/")
        );
        assert_eq!(get(&ini, "DEFAULT", "money").as_deref(), Some("$5 and $6"));
        assert_eq!(
            get(&ini, "DEFAULT", "unknown").as_deref(),
            Some("$nobody here")
        );
        assert_eq!(get(&ini, "DEFAULT", "lone").as_deref(), Some("5$ ok"));
        // The option's own section first, then DEFAULT; `group.option` names a section.
        assert_eq!(
            get(&ini, "glance_store", "local").as_deref(),
            Some("/srv/a")
        );
        assert_eq!(
            get(&ini, "glance_store", "other").as_deref(),
            Some("/var/lib/glance/b")
        );
        assert_eq!(
            get(&ini, "glance_store", "chained").as_deref(),
            Some("/srv/a/c")
        );
    }

    #[test]
    fn an_interpolation_loop_is_an_error_not_a_hang() {
        let ini = parse("[DEFAULT]\na = $b\nb = $a\n");
        let err = ini.get("DEFAULT", "a").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn syntax_errors_name_the_line_and_never_quote_it() {
        for (text, line, message) in [
            ("password = x\n", 1, "Section must be started"),
            ("[DEFAULT]\nsecret-without-equals\n", 2, "No ':' or '='"),
            ("[DEFAULT]\n= hunter2\n", 2, "Key cannot be empty"),
            ("  hunter2\n", 1, "Unexpected continuation"),
            ("[DEFAULT\n", 1, "must end with ]"),
            ("[]\n", 1, "Empty section name"),
        ] {
            let err = IniFile::parse(text, Path::new("g.conf")).unwrap_err();
            assert_eq!(err.line, Some(line), "{text:?}");
            let shown = err.to_string();
            assert!(shown.contains(message), "{shown}");
            assert!(
                shown.starts_with(&format!("g.conf line {line}:")),
                "{shown}"
            );
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn oslo_value_types() {
        for yes in ["true", "True", "TRUE", "1", "on", "yes", "Yes"] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["false", "False", "0", "off", "no", "NO"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        assert!(parse_bool("y").is_err());
        assert!(parse_bool("").is_err());
        assert_eq!(parse_int("42"), Ok(Some(42)));
        assert_eq!(parse_int(" -7 "), Ok(Some(-7)));
        assert_eq!(parse_int("+1_000"), Ok(Some(1000)));
        assert_eq!(parse_int(""), Ok(None));
        for bad in ["1e3", "0x10", "1__0", "_1", "1_", "12a", "-"] {
            assert!(parse_int(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_list(" file, http ,"), ["file", "http"]);
        assert_eq!(parse_list(""), Vec::<String>::new());
        assert_eq!(parse_list("a,,b"), ["a", "", "b"]);
        assert_eq!(
            parse_dict("fs:file, web : http").unwrap(),
            [
                ("fs".to_owned(), "file".to_owned()),
                ("web".to_owned(), "http".to_owned())
            ]
        );
        assert!(parse_dict("fs").is_err());
    }
}
