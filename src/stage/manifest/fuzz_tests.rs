//! Generated hostile inputs for `dataset.json` and the commit records: deterministic
//! mutations of valid manifests (both versions, Parquet, sharded Zarr, merge) and records.
//! Whatever a hand edit or a damaged copy makes of them, reading must not panic, must refuse
//! with one line naming the file, and what it accepts must be safe for every reader.

use super::tests::{complete, merged, parse, sharded};
use super::{parse_record, Manifest, TileRecord};
use crate::store::Store;
use serde_json::{json, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};

const FILE: &str = "st/plants/dataset.json";

/// xorshift64*: a fixed seed gives the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values a hand edit can put anywhere.
fn hostile(rng: &mut Rng) -> Value {
    let mut deep = json!([]);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let all = [
        json!(0),
        json!(-1),
        json!((1u64 << 53) + 1),
        json!(1e308),
        json!(-1e308),
        json!(1.5),
        json!(-0.0),
        json!(u64::MAX),
        json!(i64::MIN),
        // Values that pass the type and reach the checks' arithmetic.
        json!(i32::MAX),
        json!(1u64 << 31),
        json!(crate::limits::MAX_WINDOW),
        json!(crate::limits::MAX_TILES),
        json!(crate::limits::MAX_GRID_CELLS),
        json!(""),
        json!("x".repeat(10_000)),
        json!("two\nlines"),
        json!(format!("{}\n{}", "y".repeat(5_000), "z".repeat(5_000))),
        json!("NaN"),
        json!("Infinity"),
        Value::Null,
        json!(true),
        json!([]),
        json!({}),
        deep,
    ];
    all[rng.below(all.len())].clone()
}

/// JSON pointers of every value under `v` (not `v` itself).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

/// `v` mutated one to three times (the last may be a raw byte edit): the JSON bytes, and
/// what was done (for a failure's message).
fn mutate(v: &Value, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut v = v.clone();
    let mut done = Vec::new();
    for _ in 0..1 + rng.below(3) {
        match edit(&mut v, rng) {
            Ok(what) => done.push(what),
            Err(raw) => {
                return (raw.0, format!("{}{}", done.iter().map(|d| format!("{d}; ")).collect::<String>(), raw.1))
            }
        }
    }
    (serde_json::to_vec_pretty(&v).expect("serialises"), done.join("; "))
}

/// One edit of `v` in place, described; or, for a raw byte edit, `Err` with the bytes.
fn edit(v: &mut Value, rng: &mut Rng) -> Result<String, (Vec<u8>, String)> {
    let mut ptrs = vec![String::new()];
    pointers(v, String::new(), &mut ptrs);
    let objects: Vec<String> = ptrs.iter().filter(|p| v.pointer(p).is_some_and(Value::is_object)).cloned().collect();
    let what = match rng.below(8) {
        0 | 1 => {
            let p = &ptrs[1 + rng.below(ptrs.len() - 1)];
            let h = hostile(rng);
            let what = format!("{p} = {}", super::short(&h.to_string()));
            *v.pointer_mut(p).expect("walked") = h;
            what
        }
        2 => {
            let p = &objects[rng.below(objects.len())];
            let m = v.pointer_mut(p).and_then(Value::as_object_mut).expect("an object");
            match m.keys().nth(rng.below(m.len())).cloned() {
                Some(k) => {
                    m.remove(&k);
                    format!("{p}/{k} deleted")
                }
                None => "nothing deleted".into(),
            }
        }
        3 => match v.get_mut("tiles").and_then(Value::as_array_mut).filter(|t| !t.is_empty()) {
            Some(t) => {
                let (i, j) = (rng.below(t.len()), rng.below(t.len() + 1));
                let dup = t[i].clone();
                t.insert(j, dup);
                format!("tiles[{i}] duplicated at {j}")
            }
            None => "no tiles to duplicate".into(),
        },
        4 => match v.get_mut("tiles").and_then(Value::as_array_mut).filter(|t| !t.is_empty()) {
            Some(t) => {
                let (i, j) = (rng.below(t.len()), rng.below(t.len()));
                t.swap(i, j);
                format!("tiles[{i}] and tiles[{j}] swapped")
            }
            None => "no tiles to swap".into(),
        },
        5 => {
            let p = &objects[rng.below(objects.len())];
            let h = hostile(rng);
            let what = format!("{p}/unexpected = {}", super::short(&h.to_string()));
            v.pointer_mut(p).and_then(Value::as_object_mut).expect("an object").insert("unexpected".into(), h);
            what
        }
        _ => {
            let mut b = serde_json::to_vec_pretty(v).expect("serialises");
            let i = rng.below(b.len());
            let what = match rng.below(3) {
                0 => {
                    b.truncate(i);
                    format!("truncated at byte {i}")
                }
                1 => {
                    b[i] ^= 1 << rng.below(8);
                    format!("byte {i} flipped to {:?}", b[i] as char)
                }
                _ => {
                    b.insert(i, rng.next() as u8);
                    format!("byte {:?} inserted at {i}", b[i] as char)
                }
            };
            return Err((b, what));
        }
    };
    Ok(what)
}

/// Why an error text is not one short line naming `file`, if it is not.
fn bad_error(text: &str, file: &str) -> Option<String> {
    if text.contains('\n') || text.contains('\r') {
        Some(format!("multi-line error: {}", super::short(text)))
    } else if !text.contains(file) {
        Some(format!("error does not name {file}: {}", super::short(text)))
    } else if text.len() > 1000 {
        Some(format!("error of {} bytes: {}", text.len(), super::short(text)))
    } else {
        None
    }
}

/// The message of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Runs `read` on `n` mutations of each of `bases` (`file` and `stem` of each from
/// `name`); fails listing every mutation that panicked or was refused badly.
fn run(bases: &[Value], seed: u64, n: usize, mut read: impl FnMut(&Value, &[u8]) -> Result<(), (String, String)>) {
    let mut rng = Rng(seed);
    let (mut accepted, mut refused, mut failures) = (0, 0, Vec::new());
    for (b, base) in bases.iter().enumerate() {
        for _ in 0..n {
            let (bytes, what) = mutate(base, &mut rng);
            match catch_unwind(AssertUnwindSafe(|| read(base, &bytes))) {
                Ok(Ok(())) => accepted += 1,
                Ok(Err((file, text))) => {
                    refused += 1;
                    if let Some(why) = bad_error(&text, &file) {
                        failures.push(format!("base {b}, {what}: {why}"));
                    }
                }
                Err(p) => failures.push(format!("base {b}, {what}: panicked: {}", super::short(&panic_text(&*p)))),
            }
        }
    }
    eprintln!("{accepted} accepted, {refused} refused");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // Most mutations break the input; some (a swap of a tile with itself, an added key
    // that is ignored) do not: both outcomes are exercised.
    assert!(accepted > 0 && refused > accepted, "{accepted} accepted, {refused} refused");
}

/// What readers do with an accepted manifest: none of it may panic. `ds`: a folder for the
/// Zarr group built from it (nothing is written).
fn exercise(m: &Manifest, ds: &Store) {
    m.validate(Some(&m.name)).expect("what parse accepts validates again");
    let (_, _, _, _) = (m.redo(), m.columns(), m.method_label(), m.value_type());
    let (_, _, _) = (m.tile_side(), m.window_count(), m.tiles_sum());
    let (_, _, _) = (m.format.format(), m.format.zarr_version(), m.format.geoparquet());
    if let super::Kind::Merge(g) = &m.kind {
        g.description();
    }
    let _ = (m.grid.bounds(), m.grid.geotransform(), m.grid.lattice_offset());
    let windows = m.grid.windows(m.tile_side());
    assert_eq!(windows.len() as u64, m.window_count());
    for p in m.tile_prefixes() {
        m.is_tile_key(&p);
    }
    for t in &m.tiles {
        exercise_tile(m, t);
    }
    let group = crate::stage::zarr::ZarrGroup::of_manifest(ds.clone(), m);
    assert!(!group.arrays.is_empty());
    // Written back, it reads as itself (NaN nodata aside, which PartialEq cannot compare).
    let again = Manifest::parse(&serde_json::to_vec(m).unwrap(), FILE, Some(&m.name)).expect("round trip");
    assert_eq!(again.tiles, m.tiles);
}

/// What readers do with an accepted tile of `m`.
fn exercise_tile(m: &Manifest, t: &TileRecord) {
    m.check_tile(t).expect("a listed tile is on the lattice");
    assert_eq!(m.window_at(t.window.row0, t.window.col0), Some(t.window));
    for k in m.tile_keys(t) {
        m.is_tile_key(&k);
    }
    let shape = crate::stage::read::TileShape::of(m, t);
    crate::stage::read::CellOrder::new(&shape).expect("a checked window fits int4");
    let _ = t.window.cells();
}

/// The mutated manifests that parse, for the readers outside `stage` (preview, load) to
/// check that what `stage` accepts is safe for them too: data flows one way, so they call
/// this rather than this module calling them.
pub(crate) fn accepted_manifests() -> Vec<Manifest> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    for base in bases() {
        for _ in 0..600 {
            if let Ok(m) = Manifest::parse(&mutate(&base, &mut rng).0, FILE, Some("plants")) {
                out.push(m);
            }
        }
    }
    assert!(!out.is_empty(), "no mutation was accepted");
    out
}

/// The valid manifests mutated: each form in version 1 and as version 2 writes it.
fn bases() -> Vec<Value> {
    let v1 = [complete(), sharded(), merged()];
    let v2: Vec<Value> = v1.iter().map(|v| serde_json::to_value(parse(v).unwrap()).unwrap()).collect();
    v1.into_iter().chain(v2).collect()
}

#[test]
fn mutated_manifests_never_panic_and_refuse_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let ds = Store::open(dir.path().to_str().unwrap()).unwrap();
    run(&bases(), 0x9E37_79B9_7F4A_7C15, 600, |_, bytes| match Manifest::parse(bytes, FILE, Some("plants")) {
        Ok(m) => {
            exercise(&m, &ds);
            Ok(())
        }
        Err(e) => Err((FILE.to_string(), e.to_string())),
    });
}

#[test]
fn mutated_commit_records_never_panic_and_refuse_in_one_line() {
    // Each record of each base, mutated, read as `_tiles/<its id>.json`.
    let mut records = Vec::new();
    for base in bases() {
        let m = parse(&base).unwrap();
        for t in base["tiles"].as_array().unwrap() {
            records.push((m.clone(), t.clone()));
        }
    }
    let values: Vec<Value> = records.iter().map(|(_, t)| t.clone()).collect();
    let mut at = 0;
    run(&values, 0xD1B5_4A32_D192_ED03, 70, |rec, bytes| {
        let m = &records.iter().find(|(_, t)| t == rec).expect("a base").0;
        let stem = rec["id"].as_str().unwrap();
        let file = format!("st/plants/_tiles/{stem}.json");
        at += 1;
        match parse_record(bytes, &file, stem) {
            Ok(r) => {
                // finalize places it on the grid; only a record that fits is listed.
                if m.check_tile(&r).is_ok() {
                    exercise_tile(m, &r);
                }
                Ok(())
            }
            Err(e) => Err((file, e)),
        }
    });
}

/// What the mutations found: serde quotes a bad value whole, newlines and all.
#[test]
fn a_parse_error_quoting_a_hand_edited_value_stays_one_short_line() {
    for bad in [json!("two\nlines"), json!("x".repeat(10_000)), json!(format!("{}\r\n{}", "y".repeat(5000), "z"))] {
        for edit in [
            Box::new(|v: &mut Value, b: &Value| v["dtype"] = b.clone()) as Box<dyn Fn(&mut Value, &Value)>,
            Box::new(|v, b| v["tiles"][2]["row0"] = b.clone()),
            Box::new(|v, b| v["grid"] = b.clone()),
        ] {
            let mut v = complete();
            edit(&mut v, &bad);
            let e = parse(&v).unwrap_err().to_string();
            assert_eq!(bad_error(&e, FILE), None, "{e}");
            assert!(e.contains("not a valid rasterstage manifest") && e.contains(" at line "), "{e}");
        }
        let mut rec = complete()["tiles"][3].clone();
        rec["value_sum"] = bad.clone();
        let e = parse_record(&serde_json::to_vec(&rec).unwrap(), "st/plants/_tiles/r32_c0.json", "r32_c0").unwrap_err();
        assert_eq!(bad_error(&e, "st/plants/_tiles/r32_c0.json"), None, "{e}");
    }
    // The escape is visible, not dropped.
    let mut v = complete();
    v["dtype"] = json!("two\nlines");
    assert!(parse(&v).unwrap_err().to_string().contains("two\\nlines"));
}

/// An unknown key anywhere (a typo, a field of another tool) is refused, naming it: also
/// inside the grid, the bounds, the source and a tile's window, which once let it pass.
#[test]
fn an_unknown_key_in_any_object_is_refused() {
    let mut checked = 0;
    for base in bases() {
        let mut ptrs = vec![String::new()];
        pointers(&base, String::new(), &mut ptrs);
        for p in ptrs.iter().filter(|p| base.pointer(p).is_some_and(Value::is_object)) {
            let mut v = base.clone();
            v.pointer_mut(p).and_then(Value::as_object_mut).unwrap().insert("unexpected".into(), json!(1));
            let e = parse(&v).expect_err(p).to_string();
            let named = e.contains("`unexpected`") || e.contains("must have no other key");
            assert!(named && bad_error(&e, FILE).is_none(), "{p}: {e}");
            checked += 1;
        }
        for t in base["tiles"].as_array().unwrap() {
            let stem = t["id"].as_str().unwrap();
            let inner = if t.get("window").is_some() { "/window" } else { "" };
            for p in ["", inner] {
                let mut r = t.clone();
                r.pointer_mut(p).and_then(Value::as_object_mut).unwrap().insert("unexpected".into(), json!(1));
                let e = parse_record(&serde_json::to_vec(&r).unwrap(), "r.json", stem).expect_err(p);
                assert!(e.contains("unknown field `unexpected`"), "{p}: {e}");
            }
        }
    }
    assert!(checked > 30, "{checked}");
}
