//! CF grid-mapping attributes of a CRS (`grid_mapping_name` and its parameters), as rioxarray
//! writes them on `spatial_ref`: readers that know CF but not WKT (older netCDF/CF tools,
//! xarray-based code that reads the parameters) see the projection.
//!
//! The reference is pyproj's `CRS.to_cf()`: the same PROJ description (GDAL's PROJJSON) read the
//! same way, parameter by parameter, for the common projections. Any other CRS gets no CF
//! attributes; `crs_wkt` alone still describes it completely.

use serde_json::{Map, Value};

/// The CF grid-mapping attributes of the CRS `wkt`; empty when the CRS is not one CF (as
/// pyproj maps it) describes, or GDAL cannot describe it.
pub(crate) fn grid_mapping(wkt: &str) -> Map<String, Value> {
    let Ok(Some(json)) = super::geoparquet::projjson(wkt) else { return Map::new() };
    serde_json::from_str::<Value>(&json).ok().and_then(|v| from_projjson(&v)).unwrap_or_default()
}

/// A PROJJSON quantity in its base unit: a number, or `{"value": v, "unit": {...,
/// "conversion_factor": f}}`.
fn quantity(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Object(o) => {
            let value = o.get("value")?.as_f64()?;
            let factor = o.get("unit").and_then(|u| u.get("conversion_factor")).and_then(Value::as_f64).unwrap_or(1.0);
            Some(value * factor)
        }
        _ => None,
    }
}

/// A parameter or method name as pyproj keys it: lower case, spaces as underscores.
fn key(name: &str) -> String {
    name.to_lowercase().replace(' ', "_")
}

fn from_projjson(crs: &Value) -> Option<Map<String, Value>> {
    let kind = crs.get("type")?.as_str()?;
    let geodetic = match kind {
        "GeographicCRS" => crs,
        "ProjectedCRS" => crs.get("base_crs")?,
        _ => return None,
    };
    let datum = geodetic.get("datum").or_else(|| geodetic.get("datum_ensemble"))?;
    let mut m = Map::new();
    let ell = datum.get("ellipsoid")?;
    let (a, rf) = match (ell.get("radius"), ell.get("semi_major_axis")) {
        (Some(r), _) => (quantity(r)?, 0.0),
        (None, Some(a)) => {
            let a = quantity(a)?;
            let rf = match (ell.get("inverse_flattening"), ell.get("semi_minor_axis")) {
                (Some(rf), _) => rf.as_f64()?,
                (None, Some(b)) => quantity(b).map(|b| if a == b { 0.0 } else { a / (a - b) })?,
                _ => return None,
            };
            (a, rf)
        }
        _ => return None,
    };
    let b = if rf == 0.0 { a } else { a * (1.0 - 1.0 / rf) };
    m.insert("semi_major_axis".into(), a.into());
    m.insert("semi_minor_axis".into(), b.into());
    m.insert("inverse_flattening".into(), rf.into());
    m.insert("reference_ellipsoid_name".into(), ell.get("name")?.clone());
    // PROJJSON leaves out the Greenwich meridian.
    let (pm_name, pm_lon) = match datum.get("prime_meridian") {
        Some(pm) => (pm.get("name")?.clone(), pm.get("longitude").and_then(quantity_degrees).unwrap_or(0.0)),
        None => (Value::from("Greenwich"), 0.0),
    };
    m.insert("longitude_of_prime_meridian".into(), pm_lon.into());
    m.insert("prime_meridian_name".into(), pm_name);
    m.insert("geographic_crs_name".into(), geodetic.get("name")?.clone());
    m.insert("horizontal_datum_name".into(), datum.get("name")?.clone());
    if kind == "GeographicCRS" {
        m.insert("grid_mapping_name".into(), "latitude_longitude".into());
        return Some(m);
    }
    m.insert("projected_crs_name".into(), crs.get("name")?.clone());
    let conv = crs.get("conversion")?;
    let method = key(conv.get("method")?.get("name")?.as_str()?);
    let mut p = std::collections::HashMap::new();
    for param in conv.get("parameters")?.as_array()? {
        // pyproj takes each value as written, in the parameter's own unit.
        p.insert(key(param.get("name")?.as_str()?), param.get("value")?.as_f64()?);
    }
    let f = |k: &str| p.get(k).map(|&v| Value::from(v));
    let pair = |a: &str, b: &str| Some(Value::from(vec![*p.get(a)?, *p.get(b)?]));
    let (name, attrs): (&str, Vec<(&str, Option<Value>)>) = match method.as_str() {
        "transverse_mercator" => (
            "transverse_mercator",
            vec![
                ("latitude_of_projection_origin", f("latitude_of_natural_origin")),
                ("longitude_of_central_meridian", f("longitude_of_natural_origin")),
                ("scale_factor_at_central_meridian", f("scale_factor_at_natural_origin")),
            ],
        ),
        "lambert_azimuthal_equal_area" => (
            "lambert_azimuthal_equal_area",
            vec![
                ("latitude_of_projection_origin", f("latitude_of_natural_origin")),
                ("longitude_of_projection_origin", f("longitude_of_natural_origin")),
            ],
        ),
        "albers_equal_area" | "lambert_conic_conformal_(2sp)" => (
            if method == "albers_equal_area" { "albers_conical_equal_area" } else { "lambert_conformal_conic" },
            vec![
                ("standard_parallel", pair("latitude_of_1st_standard_parallel", "latitude_of_2nd_standard_parallel")),
                ("latitude_of_projection_origin", f("latitude_of_false_origin")),
                ("longitude_of_central_meridian", f("longitude_of_false_origin")),
            ],
        ),
        "lambert_conic_conformal_(1sp)" => (
            "lambert_conformal_conic",
            vec![
                ("standard_parallel", f("latitude_of_natural_origin")),
                ("longitude_of_central_meridian", f("longitude_of_natural_origin")),
            ],
        ),
        "polar_stereographic_(variant_b)" => (
            "polar_stereographic",
            vec![
                ("standard_parallel", f("latitude_of_standard_parallel")),
                ("straight_vertical_longitude_from_pole", f("longitude_of_origin")),
            ],
        ),
        "polar_stereographic_(variant_a)" => (
            "polar_stereographic",
            vec![
                ("latitude_of_projection_origin", f("latitude_of_natural_origin")),
                ("straight_vertical_longitude_from_pole", f("longitude_of_natural_origin")),
                ("scale_factor_at_projection_origin", f("scale_factor_at_natural_origin")),
            ],
        ),
        "mercator_(variant_a)" => (
            "mercator",
            vec![
                ("standard_parallel", f("latitude_of_natural_origin")),
                ("longitude_of_projection_origin", f("longitude_of_natural_origin")),
                ("scale_factor_at_projection_origin", f("scale_factor_at_natural_origin")),
            ],
        ),
        "mercator_(variant_b)" => (
            "mercator",
            vec![
                ("standard_parallel", f("latitude_of_1st_standard_parallel")),
                ("longitude_of_projection_origin", f("longitude_of_natural_origin")),
            ],
        ),
        _ => return None,
    };
    // Only the methods with a false origin name its easting and northing otherwise.
    let false_origin = matches!(method.as_str(), "albers_equal_area" | "lambert_conic_conformal_(2sp)");
    let (east, north) = if false_origin {
        ("easting_at_false_origin", "northing_at_false_origin")
    } else {
        ("false_easting", "false_northing")
    };
    for (k, v) in attrs.into_iter().chain([("false_easting", f(east)), ("false_northing", f(north))]) {
        m.insert(k.into(), v?);
    }
    m.insert("grid_mapping_name".into(), name.into());
    Some(m)
}

/// A prime meridian's longitude in degrees (PROJJSON writes it in degrees, or with a unit).
fn quantity_degrees(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        // conversion_factor converts to radians for angles.
        Value::Object(_) => quantity(v).map(f64::to_degrees),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epsg(code: u32) -> Map<String, Value> {
        grid_mapping(&gdal::spatial_ref::SpatialRef::from_epsg(code).unwrap().to_wkt().unwrap())
    }

    #[test]
    fn common_crs_map_to_cf() {
        let m = epsg(4326);
        assert_eq!(m["grid_mapping_name"], "latitude_longitude");
        assert_eq!(m["semi_major_axis"], 6378137.0);
        assert_eq!(m["inverse_flattening"], 298.257223563);
        let utm = epsg(32633);
        assert_eq!(utm["grid_mapping_name"], "transverse_mercator");
        assert_eq!(utm["longitude_of_central_meridian"], 15.0);
        assert_eq!(utm["scale_factor_at_central_meridian"], 0.9996);
        assert_eq!(epsg(3035)["grid_mapping_name"], "lambert_azimuthal_equal_area");
        assert_eq!(epsg(5070)["standard_parallel"], serde_json::json!([29.5, 45.5]));
        assert_eq!(epsg(3413)["grid_mapping_name"], "polar_stereographic");
        assert_eq!(epsg(3395)["grid_mapping_name"], "mercator");
        assert_eq!(epsg(2154)["grid_mapping_name"], "lambert_conformal_conic");
        // Web Mercator is not a CF projection (pyproj gives only crs_wkt), nor is Swiss LV95
        // here: rasterstage writes no CF attributes for them.
        assert!(epsg(3857).is_empty());
        assert!(grid_mapping("").is_empty());
    }
}
