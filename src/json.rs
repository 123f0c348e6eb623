//! Serde helpers for JSON numbers that JSON itself cannot write (NaN, infinities): a leaf
//! module, so that both the source description and the staged manifest can use them.

/// Serde for f64 where NaN and infinities are strings (JSON has no NaN).
pub(crate) mod json_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises finite values as numbers, others as `"NaN"`, `"Infinity"`, `"-Infinity"`.
    ///
    /// # Errors
    /// The serializer's.
    pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        match *v {
            v if v.is_finite() => s.serialize_f64(v),
            v if v.is_nan() => s.serialize_str("NaN"),
            v => s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" }),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        N(f64),
        S(String),
    }

    /// Reads what [`serialize`] writes.
    ///
    /// # Errors
    /// A string other than NaN/Infinity/-Infinity.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::N(v) => Ok(v),
            Repr::S(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => Err(serde::de::Error::custom(format!("expected a number or \"NaN\", got {s:?}"))),
            },
        }
    }
}

/// [`json_f64`] for optional values (`null` = none).
pub(crate) mod json_opt_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// See [`super::json_f64::serialize`].
    ///
    /// # Errors
    /// The serializer's.
    pub(crate) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => super::json_f64::serialize(x, s),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    struct W(#[serde(with = "super::json_f64")] f64);

    /// See [`super::json_f64::deserialize`].
    ///
    /// # Errors
    /// As there.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

/// JSON text of `v`, compact, with the keys of every object in sorted order: the bytes a
/// settings digest is taken of. Sorting here, rather than relying on serde_json's map, keeps
/// every digest the same whatever order a struct declares its fields in and whether or not
/// a dependency turns on serde_json's `preserve_order`.
pub(crate) fn canonical(v: &serde_json::Value) -> String {
    let mut v = v.clone();
    v.sort_all_objects();
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::canonical;
    use serde_json::json;

    #[test]
    fn canonical_is_serde_jsons_sorted_compact_text() {
        let v = json!({"b": [1, {"z": null, "a": "x\"y"}], "a": 1.5, "c": {"y": -2, "x": true}});
        assert_eq!(canonical(&v), v.to_string());
        assert_eq!(canonical(&v), r#"{"a":1.5,"b":[1,{"a":"x\"y","z":null}],"c":{"x":true,"y":-2}}"#);
    }
}
