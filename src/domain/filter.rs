//! Settings filters of the open-games list: `settings.<key>=<value>` pairs, as one JSON object
//! the listed games' settings must contain (jsonb `@>` in the store, [`contains`] in memory).

use serde_json::{Map, Value};

use super::LobbyError;

/// Most `settings.<key>` filters in one query.
pub const MAX_FILTERS: usize = 10;
const MAX_KEY_LEN: usize = 64;
const MAX_VALUE_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SettingsFilter(Value);

impl SettingsFilter {
    /// Reads the filters among query pairs (other pairs are ignored). A value that reads as
    /// JSON (`2`, `true`, `"2"`) is taken as that; anything else as a string (`ranked`).
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LobbyError> {
        let mut filter = Map::new();
        for (name, raw) in pairs {
            let Some(key) = name.strip_prefix("settings.") else {
                continue;
            };
            if key.is_empty() || key.len() > MAX_KEY_LEN || raw.len() > MAX_VALUE_LEN {
                return Err(LobbyError::BadFilter(format!(
                    "Invalid request - a settings filter is settings.<key>=<value>, with a key of 1 to {MAX_KEY_LEN} characters and a value of at most {MAX_VALUE_LEN}."
                )));
            }
            let value = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::from(raw));
            // Postgres' jsonb cannot hold NUL (`\u0000`), in a key or a string.
            if key.contains('\0') || holds_nul(&value) {
                return Err(LobbyError::BadFilter(format!(
                    "Invalid request - the settings filter `settings.{}` contains a NUL character.",
                    key.replace('\0', "\\u0000")
                )));
            }
            filter.insert(key.to_string(), value);
            if filter.len() > MAX_FILTERS {
                return Err(LobbyError::BadFilter(format!(
                    "Invalid request - at most {MAX_FILTERS} settings filters."
                )));
            }
        }
        Ok(Self(Value::Object(filter)))
    }

    /// The filter as the jsonb value the store matches with `@>`.
    pub fn as_json(&self) -> &Value {
        static EMPTY: std::sync::LazyLock<Value> =
            std::sync::LazyLock::new(|| Value::Object(Map::new()));
        if self.0.is_null() { &EMPTY } else { &self.0 }
    }

    pub fn matches(&self, settings: &Value) -> bool {
        contains(settings, self.as_json())
    }
}

/// Whether a NUL character stands anywhere in a JSON value's strings or keys.
pub fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Whether `value` contains `filter`, as Postgres' jsonb `@>` decides it.
pub fn contains(value: &Value, filter: &Value) -> bool {
    match (value, filter) {
        (Value::Object(v), Value::Object(f)) => f
            .iter()
            .all(|(k, fv)| v.get(k).is_some_and(|vv| contains(vv, fv))),
        (Value::Array(v), Value::Array(f)) => {
            f.iter().all(|fv| v.iter().any(|vv| contains(vv, fv)))
        }
        (Value::Array(v), scalar) if !scalar.is_object() && !scalar.is_array() => {
            v.iter().any(|vv| vv == scalar)
        }
        (v, f) => v == f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_filters() {
        let pairs = [
            ("count", "3"),
            ("settings.mode", "ranked"),
            ("settings.num_players", "2"),
            ("settings.label", "\"2\""),
        ];
        assert_eq!(
            SettingsFilter::parse(pairs).unwrap().as_json(),
            &json!({"mode": "ranked", "num_players": 2, "label": "2"})
        );
        assert_eq!(SettingsFilter::parse([]).unwrap().as_json(), &json!({}));
        assert_eq!(SettingsFilter::default().as_json(), &json!({}));
        assert!(SettingsFilter::parse([("settings.", "x")]).is_err());
        for (key, value) in [
            ("settings.mode", "\0"),
            ("settings.mode", "\"\\u0000\""),
            ("settings.\0", "1"),
            ("settings.mode", "{\"a\": [\"\\u0000\"]}"),
            ("settings.mode", "{\"\\u0000\": 1}"),
        ] {
            let err = SettingsFilter::parse([(key, value)]).unwrap_err();
            assert!(
                matches!(&err, LobbyError::BadFilter(m) if m.contains("settings.") && m.contains("NUL")),
                "{key}={value}: {err:?}"
            );
        }
        let many: Vec<(String, &str)> = (0..11).map(|i| (format!("settings.k{i}"), "v")).collect();
        assert!(SettingsFilter::parse(many.iter().map(|(k, v)| (k.as_str(), *v))).is_err());
    }

    #[test]
    fn containment_matches_postgres() {
        let settings = json!({"mode": "ranked", "num_players": 4, "tags": ["a", "b"]});
        assert!(contains(&settings, &json!({})));
        assert!(contains(&settings, &json!({"mode": "ranked"})));
        assert!(contains(
            &settings,
            &json!({"mode": "ranked", "num_players": 4})
        ));
        assert!(!contains(&settings, &json!({"num_players": "4"})));
        assert!(contains(&settings, &json!({"tags": ["b"]})));
        assert!(!contains(&settings, &json!({"tags": ["c"]})));
        assert!(!contains(&settings, &json!({"other": 1})));
    }
}
