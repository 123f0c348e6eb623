//! `preview`: a PNG of a staged dataset, as `gdal_translate -of PNG -outsize` would draw it,
//! and optionally a map of its tiles (committed, not yet committed, failed to load).
//!
//! Tiles are read one at a time through the same reader `load` and `merge` use
//! ([`crate::stage::read`]), so memory is one tile plus the preview's own pixels, whose
//! number [`MAX_PREVIEW_PIXELS`] bounds, never the grid. Each pixel is the average (or mode)
//! of the valid cells whose centres it contains ([`canvas::AxisMap`]).

pub mod canvas;
pub mod draw;
pub mod ramp;

use crate::limits::{MAX_PREVIEW_PIXELS, MAX_PREVIEW_WIDTH};
use crate::load::pg::ConnSpec;
use crate::load::LoadError;
use crate::name::DatasetName;
use crate::resample::{Method, Resampling};
use crate::stage::manifest::{self, Column, Kind, Manifest, Status};
use crate::stage::read::{fetch_tile, visit_f64, DecodeError, TileShape};
use crate::stage::{StageError, TileRecord};
use crate::store::{Store, StoreError};
use canvas::{Aggregate, AxisMap, Canvas};
use draw::{Image, TileState, LEGEND_HEIGHT};
use ramp::{Ramp, Stretch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file `inspect --preview` writes into each dataset folder, beside `dataset.json`.
pub const PREVIEW_FILE: &str = "preview.png";
/// Default preview width in pixels.
pub const DEFAULT_WIDTH: usize = 1024;

/// Why a preview could not be made; each names the flag, dataset, tile or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// dataset.json or a commit record is unreadable.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// No dataset of that name under the root.
    #[error("no staged dataset {name} under {root} (no {name}/dataset.json); {known}")]
    NoDataset {
        /// The name asked for.
        name: String,
        /// The staging root.
        root: String,
        /// Which datasets there are.
        known: String,
    },
    /// A bad option value (`--width`, `--column`, ...).
    #[error("{flag}: {reason}")]
    Option {
        /// The flag.
        flag: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A tile cannot be read.
    #[error("{dataset}: tile {tile}: {reason}")]
    Tile {
        /// Dataset name.
        dataset: String,
        /// Tile id.
        tile: String,
        /// What is wrong with it, and the command that rewrites it.
        reason: String,
    },
    /// The load ledger could not be read (`--database-url`).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The PNG encoder failed.
    #[error("{name}: encoding the preview PNG failed: {reason}")]
    Encode {
        /// Dataset name.
        name: String,
        /// The encoder's reason.
        reason: String,
    },
    /// The PNG could not be written.
    #[error("--out {path}: cannot write the preview ({reason}); give a writable file path")]
    Write {
        /// The output path.
        path: String,
        /// The OS's reason.
        reason: String,
    },
}

fn option(flag: &'static str, reason: impl Into<String>) -> PreviewError {
    PreviewError::Option { flag, reason: reason.into() }
}

/// Where `--tiles` looks up which tiles are loaded (`--database-url`, `--schema`,
/// `--table-prefix`).
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// The connection.
    pub conn: ConnSpec,
    /// Schema of the dataset tables and `raster_tile_loads`.
    pub schema: String,
    /// Prefix of each dataset's table name.
    pub table_prefix: String,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    /// Width in pixels (the height follows from the grid's extent).
    pub width: usize,
    /// Column of a merged dataset [default: its first].
    pub column: Option<String>,
    /// Average or mode [default: mode for integer data converted with `mode`, else average].
    pub aggregate: Option<Aggregate>,
    /// Colour ramp.
    pub ramp: Ramp,
    /// Value stretch.
    pub stretch: Stretch,
    /// Overlay the tile grid.
    pub tiles: bool,
    /// With `tiles`: mark committed tiles the load ledger does not hold as failed.
    pub loads: Option<LoadTarget>,
    /// No progress bar or progress log lines.
    pub quiet: bool,
}

impl PreviewOptions {
    /// The options from the command line's `--width`, `--method`, `--ramp` and `--stretch`
    /// (each `None` when not given), with the defaults for the rest.
    ///
    /// # Errors
    /// [`PreviewError::Option`] naming the flag and the values it takes.
    pub fn from_flags(
        width: Option<&str>,
        method: Option<&str>,
        ramp: Option<&str>,
        stretch: Option<&str>,
    ) -> Result<PreviewOptions, PreviewError> {
        let unknown =
            |flag: &'static str, v: &str, names: &str| option(flag, format!("unknown {v:?}; use one of {names}"));
        let mut o = PreviewOptions::default();
        if let Some(w) = width {
            o.width = w.trim().parse().map_err(|_| {
                option("--width", format!("{w:?} is not a number of pixels; give 1 to {MAX_PREVIEW_WIDTH}"))
            })?;
        }
        if let Some(m) = method {
            o.aggregate = Some(Aggregate::parse(m).ok_or_else(|| unknown("--method", m, "average, mode"))?);
        }
        if let Some(r) = ramp {
            o.ramp = Ramp::parse(r).ok_or_else(|| unknown("--ramp", r, &Ramp::names()))?;
        }
        if let Some(s) = stretch {
            o.stretch = Stretch::parse(s).ok_or_else(|| unknown("--stretch", s, "linear, percentile"))?;
        }
        Ok(o)
    }
}

impl Default for PreviewOptions {
    fn default() -> Self {
        PreviewOptions {
            width: DEFAULT_WIDTH,
            column: None,
            aggregate: None,
            ramp: Ramp::viridis(),
            stretch: Stretch::Linear,
            tiles: false,
            loads: None,
            quiet: false,
        }
    }
}

/// A rendered preview and what it shows.
#[derive(Debug)]
pub struct Preview {
    /// The PNG file's bytes.
    pub png: Vec<u8>,
    /// Dataset name.
    pub name: String,
    /// The merged column shown, if the dataset is merged.
    pub column: Option<String>,
    /// Map width in pixels (the image's).
    pub width: usize,
    /// Map height in pixels (the image is [`LEGEND_HEIGHT`] taller).
    pub height: usize,
    /// Grid width x height in cells.
    pub grid: [usize; 2],
    /// The values the ramp's ends stand for; `None` when no cell is valid.
    pub range: Option<(f64, f64)>,
    /// How cells were summarised.
    pub aggregate: Aggregate,
    /// Tiles read (committed tiles with valid cells).
    pub tiles_read: usize,
    /// Committed tiles.
    pub committed: usize,
    /// All tiles of the grid.
    pub tiles_total: usize,
    /// Committed tiles the load ledger does not hold with their checksum (with a database).
    pub failed: Vec<String>,
    /// With a database: whether the dataset's table exists (a load has started).
    pub table_exists: Option<bool>,
    /// The ramp drawn with.
    pub ramp: Ramp,
    /// The stretch used.
    pub stretch: Stretch,
}

impl Preview {
    /// One line saying what the preview shows.
    pub fn summary(&self) -> String {
        let what = self.column.as_ref().map_or(self.name.clone(), |c| format!("{} column {c}", self.name));
        // The range is of f32 pixel values: printed as f32, 13.2 is not 13.199999809265137.
        let range =
            self.range.map_or("no valid cells".to_string(), |(l, h)| format!("values {} to {}", l as f32, h as f32));
        let mut line = format!(
            "{what}: {}x{} preview of {}x{} cells, {} of {} tiles committed, {} read, {range} ({}, {} {})",
            self.width,
            self.height,
            self.grid[0],
            self.grid[1],
            self.committed,
            self.tiles_total,
            self.tiles_read,
            self.aggregate.name(),
            self.stretch.name(),
            self.ramp.name(),
        );
        match self.table_exists {
            Some(false) => line.push_str(", no table loaded yet"),
            Some(true) if self.failed.is_empty() => line.push_str(", every committed tile loaded"),
            Some(true) => {
                // The first few ids: a whole failed run of a large grid would not fit a line.
                const SHOWN: usize = 20;
                let n = self.failed.len();
                let mut ids = self.failed.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(" ");
                if n > SHOWN {
                    ids.push_str(&format!(" and {} more", n - SHOWN));
                }
                line.push_str(&format!(", {n} {} not loaded (red): {ids}", if n == 1 { "tile" } else { "tiles" }));
            }
            None => {}
        }
        line
    }
}

/// Splits `<root>/<dataset>` into the root and the dataset name (`plants` alone is
/// `./plants`).
pub fn split_dataset_url(url: &str) -> (String, String) {
    let t = url.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((root, name)) if !root.is_empty() && !root.ends_with(':') && !root.ends_with(":/") => {
            (root.to_string(), name.to_string())
        }
        Some(("", name)) => ("/".to_string(), name.to_string()),
        _ => (".".to_string(), t.to_string()),
    }
}

/// The folder of dataset `name` under staging root `root`, with its manifest.
///
/// # Errors
/// [`PreviewError::NoDataset`] naming the datasets that are there; a bad name; the store's.
pub(crate) fn open_dataset(root: &Store, name: &str) -> Result<(Store, Manifest), PreviewError> {
    let n = DatasetName::new(name).map_err(|e| option("--dataset", e.to_string()))?;
    let ds = root.child(n.as_str());
    match Manifest::read(&ds)? {
        Some(m) => Ok((ds, m)),
        None => {
            let mut names = Vec::new();
            for f in root.folders()? {
                if root.child(&f).get(manifest::MANIFEST)?.is_some() {
                    names.push(f);
                }
            }
            let known = if names.is_empty() {
                "nothing is staged there; run convert first".to_string()
            } else {
                format!("staged there: {}", names.join(", "))
            };
            Err(PreviewError::NoDataset { name: name.to_string(), root: root.url().to_string(), known })
        }
    }
}

/// The map's height for `width` pixels across grid `m`: the grid's extent's aspect,
/// rounded, at least 1; checked against [`MAX_PREVIEW_WIDTH`] and [`MAX_PREVIEW_PIXELS`].
///
/// # Errors
/// [`PreviewError::Option`] naming `--width` and the largest width that fits.
pub(crate) fn preview_size(m: &Manifest, width: usize) -> Result<(usize, usize), PreviewError> {
    if !(1..=MAX_PREVIEW_WIDTH).contains(&width) {
        return Err(option("--width", format!("is {width}, must be from 1 to {MAX_PREVIEW_WIDTH} pixels")));
    }
    let g = &m.grid;
    let aspect = (g.height as f64 * g.dy.abs()) / (g.width as f64 * g.dx);
    let height = (width as f64 * aspect).round().max(1.0);
    let pixels = width as f64 * height;
    if !height.is_finite() || pixels > MAX_PREVIEW_PIXELS as f64 {
        let fit = ((MAX_PREVIEW_PIXELS as f64 / aspect).sqrt().floor() as usize).clamp(1, MAX_PREVIEW_WIDTH);
        return Err(option(
            "--width",
            format!(
                "{width} makes a {width} x {height} preview of {} ({} x {} cells), more than {MAX_PREVIEW_PIXELS} pixels: use --width {fit} or less",
                m.name, g.width, g.height
            ),
        ));
    }
    Ok((width, height as usize))
}

/// Committed tiles of `m` in folder `ds`, sorted: the manifest's when complete, else the
/// commit records that are windows of its grid (as `inspect` counts them).
fn committed_tiles(ds: &Store, m: &Manifest) -> Result<Vec<TileRecord>, StageError> {
    if m.status == Status::Complete {
        return Ok(m.tiles.clone());
    }
    let mut recs: Vec<TileRecord> = manifest::committed(ds)?.into_iter().filter(|r| m.check_tile(r).is_ok()).collect();
    recs.sort_by_key(|t| (t.window.row0, t.window.col0));
    recs.dedup_by_key(|t| (t.window.row0, t.window.col0));
    Ok(recs)
}

/// The column index of `--column` in a merged dataset (its first by default).
fn pick_column(m: &Manifest, column: Option<&str>) -> Result<Option<usize>, PreviewError> {
    match (m.columns(), column) {
        (None, None) => Ok(None),
        (None, Some(c)) => Err(option(
            "--column",
            format!(
                "{} is a converted dataset with one value column, not a merged one; leave --column {c} out",
                m.name
            ),
        )),
        (Some(_), None) => Ok(Some(0)),
        (Some(cols), Some(c)) => cols.iter().position(|col| col.name == c).map(Some).ok_or_else(|| {
            let names = cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
            option("--column", format!("{} has no column {c:?}; its columns are {names}", m.name))
        }),
    }
}

/// Mode for integer data that convert resampled with `mode` (what it does for
/// `categorical_data`), average otherwise. A merged column follows its input dataset, when
/// that is still staged where the merge found it.
fn default_aggregate(m: &Manifest, index: Option<usize>) -> Aggregate {
    let categorical = |m: &Manifest, dtype: crate::dtype::DataType| {
        matches!(&m.kind, Kind::Raster(r) if r.method == Resampling::Resampled(Method::Mode)) && !dtype.is_float()
    };
    let yes = match (index, m.columns()) {
        (Some(i), Some(cols)) => {
            let c = &cols[i];
            crate::store::StorageOptions::default()
                .with_env()
                .ok()
                .and_then(|o| Store::open_existing(&c.source, &o).ok())
                .and_then(|s| Manifest::read(&s).ok().flatten())
                .is_some_and(|src| categorical(&src, c.dtype))
        }
        _ => categorical(m, m.value_type().0),
    };
    if yes {
        Aggregate::Mode
    } else {
        Aggregate::Average
    }
}

/// Renders the preview of dataset `name` under staging root `root`.
///
/// # Errors
/// As [`open_dataset`] and [`render`].
pub fn render_dataset(root: &Store, name: &str, opts: &PreviewOptions) -> Result<Preview, PreviewError> {
    let (ds, m) = open_dataset(root, name)?;
    render(&ds, &m, opts)
}

/// Renders the preview of the dataset in folder `ds`.
///
/// # Errors
/// [`PreviewError`] naming the flag, tile or object at fault.
pub(crate) fn render(ds: &Store, m: &Manifest, opts: &PreviewOptions) -> Result<Preview, PreviewError> {
    let (width, height) = preview_size(m, opts.width)?;
    let index = pick_column(m, opts.column.as_deref())?;
    let aggregate = opts.aggregate.unwrap_or_else(|| default_aggregate(m, index));
    let column_of = index.zip(m.columns());
    let tiles = committed_tiles(ds, m)?;
    // Before any tile is read: a database that cannot be reached fails the run at once.
    let ledger = opts.loads.as_ref().filter(|_| opts.tiles).map(|t| ledger_of(t, m)).transpose()?;

    let maps = (AxisMap::new(m.grid.width as u64, width as u64), AxisMap::new(m.grid.height as u64, height as u64));
    let mut canvas = Canvas::new(aggregate, width, height);
    let read = read_tiles(ds, m, &tiles, column_of, maps, &mut canvas, opts.quiet)?;
    let pixels = canvas.values();
    drop(canvas);
    let range = ramp::range(&pixels, opts.stretch);
    let mut image = Image::new(width, height + LEGEND_HEIGHT);
    if let Some(r) = range {
        image.paint(&pixels, &opts.ramp, r);
    }
    drop(pixels);

    let failed = if opts.tiles { draw_tiles(&mut image, m, &tiles, ledger.as_ref(), maps) } else { Vec::new() };
    let (low, high) = range.map_or((String::new(), String::new()), |(l, h)| (draw::label(l), draw::label(h)));
    image.legend(height, &opts.ramp, &low, &high);

    let column = column_of.map(|(i, c)| c[i].name.clone());
    let mut text = vec![
        ("Software", format!("rasterstage {}", env!("CARGO_PKG_VERSION"))),
        ("Title", column.as_ref().map_or(m.name.clone(), |c| format!("{} / {c}", m.name))),
        ("rasterstage:ramp", opts.ramp.name().to_string()),
        ("rasterstage:stretch", opts.stretch.name().to_string()),
        ("rasterstage:aggregate", aggregate.name().to_string()),
    ];
    if let Some((l, h)) = range {
        text.push(("rasterstage:range", format!("{l:?} {h:?}")));
    }
    let png =
        encode_png(&image, &text).map_err(|e| PreviewError::Encode { name: m.name.clone(), reason: e.to_string() })?;
    Ok(Preview {
        png,
        name: m.name.clone(),
        column,
        width,
        height,
        grid: [m.grid.width, m.grid.height],
        range,
        aggregate,
        tiles_read: read,
        committed: tiles.len(),
        tiles_total: m.tile_count,
        failed,
        table_exists: ledger.map(|l| l.is_some()),
        ramp: opts.ramp,
        stretch: opts.stretch,
    })
}

/// Adds the valid cells of every committed tile to `canvas`, one tile at a time: the `value`
/// of a converted dataset, or column `index` of a merged one's `columns` (`column_of`);
/// returns how many tiles had cells.
fn read_tiles(
    ds: &Store,
    m: &Manifest,
    tiles: &[TileRecord],
    column_of: Option<(usize, &[Column])>,
    (cols_map, rows_map): (AxisMap, AxisMap),
    canvas: &mut Canvas,
    quiet: bool,
) -> Result<usize, PreviewError> {
    let stored: Vec<&TileRecord> = tiles.iter().filter(|t| t.path.is_some()).collect();
    let progress = crate::progress::Progress::new(&m.name, stored.len() as u64, 0, quiet);
    for t in &stored {
        let tile_err = |reason: String| PreviewError::Tile { dataset: m.name.clone(), tile: t.id.clone(), reason };
        let parts = match fetch_tile(ds, m, t) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(crate::stage::read::FetchError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(tile_err(e.to_string())),
        };
        let xs: Vec<(u64, u64)> =
            (t.window.col0..t.window.col0 + t.window.cols).map(|c| cols_map.pixels_of(c as u64)).collect();
        let ys: Vec<(u64, u64)> =
            (t.window.row0..t.window.row0 + t.window.rows).map(|r| rows_map.pixels_of(r as u64)).collect();
        let mut add = |r: i32, c: i32, v: f64| -> std::io::Result<()> {
            // The readers refuse cells outside the tile's window, so both offsets are in range.
            canvas.add(ys[r as usize - t.window.row0], xs[c as usize - t.window.col0], v);
            Ok(())
        };
        let shape = TileShape::of(m, t);
        let r = match column_of {
            None => visit_f64(m.format.format(), &parts[0], &shape, None, &mut add),
            Some((index, columns)) => {
                crate::stage::merged::visit_column(m.format.format(), &parts, &shape, columns, index, &mut add)
            }
        };
        r.map_err(|e| match e {
            DecodeError::Bad(s) => tile_err(format!("unreadable tile: {s}; run {} again with --overwrite", m.redo())),
            DecodeError::Sink(e) => tile_err(e.to_string()),
        })?;
        progress.tile_done(t.window.cells() as u64);
    }
    progress.finish();
    Ok(stored.len())
}

/// Draws every window of `m`'s grid in its state; returns the ids of the failed ones.
fn draw_tiles(
    image: &mut Image,
    m: &Manifest,
    tiles: &[TileRecord],
    ledger: Option<&Option<HashMap<String, String>>>,
    (cols_map, rows_map): (AxisMap, AxisMap),
) -> Vec<String> {
    let committed: HashMap<(usize, usize), &TileRecord> =
        tiles.iter().map(|t| ((t.window.row0, t.window.col0), t)).collect();
    let mut failed = Vec::new();
    let win = m.window.max(1);
    for row0 in (0..m.grid.height).step_by(win) {
        for col0 in (0..m.grid.width).step_by(win) {
            let (rows, cols) = (win.min(m.grid.height - row0), win.min(m.grid.width - col0));
            let state = match (committed.get(&(row0, col0)), ledger) {
                (None, _) => TileState::Uncommitted,
                (Some(t), Some(Some(loaded)))
                    if loaded.get(&t.id).map(String::as_str) != Some(crate::load::ledger::wanted_checksum(t)) =>
                {
                    failed.push(t.id.clone());
                    TileState::Failed
                }
                (Some(_), _) => TileState::Committed,
            };
            let xs = (cols_map.edge(col0 as u64) as usize, cols_map.edge((col0 + cols) as u64) as usize);
            let ys = (rows_map.edge(row0 as u64) as usize, rows_map.edge((row0 + rows) as u64) as usize);
            image.tile(xs, ys, state);
        }
    }
    failed
}

/// The image as an RGBA PNG with `text` as tEXt chunks.
fn encode_png(image: &Image, text: &[(&str, String)]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    // The limits keep both sides far below u32::MAX.
    let mut enc = png::Encoder::new(&mut out, image.width as u32, image.height as u32);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Balanced);
    for (k, v) in text {
        enc.add_text_chunk((*k).to_string(), v.clone())?;
    }
    let mut w = enc.write_header()?;
    w.write_image_data(&image.rgba)?;
    w.finish()?;
    Ok(out)
}

/// The load ledger of `m`'s table: tile id -> checksum loaded; `None` when the table does
/// not exist (no load has started, so nothing has failed).
fn ledger_of(t: &LoadTarget, m: &Manifest) -> Result<Option<HashMap<String, String>>, LoadError> {
    use crate::load::pg::{check_ident, qualified, reason};
    check_ident("--schema", &t.schema, false)?;
    check_ident("--table-prefix", &t.table_prefix, true)?;
    let table = crate::load::table_name(&t.table_prefix, &DatasetName::new(&m.name)?)?;
    let qt = qualified(&t.schema, &table);
    let mut client = t.conn.connect()?;
    let db =
        |e: postgres::Error| LoadError::Db { what: format!("reading the load ledger of {qt}"), reason: reason(&e) };
    let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&qt]).map_err(db)?.get(0);
    if !exists {
        return Ok(None);
    }
    let rows = crate::load::ledger::read(&mut client, &t.schema, &table).map_err(db)?;
    Ok(Some(rows.into_values().map(|r| (r.tile_id, r.checksum)).collect()))
}

/// The output file of `preview --out`: a temporary file beside it, created before any tile
/// is read (so an unwritable path fails at once), renamed over the path when the PNG is
/// complete (so no half-written PNG is ever at the path), removed if the run fails.
#[derive(Debug)]
pub struct OutFile {
    path: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl OutFile {
    /// Creates the temporary file beside `path`.
    ///
    /// # Errors
    /// [`PreviewError::Write`] naming the path.
    pub fn create(path: &Path) -> Result<OutFile, PreviewError> {
        let werr = |e: std::io::Error| PreviewError::Write { path: path.display().to_string(), reason: e.to_string() };
        if path.is_dir() {
            return Err(werr(std::io::Error::other("it is a folder")));
        }
        let name = path.file_name().ok_or_else(|| werr(std::io::Error::other("no file name")))?;
        let tmp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        std::fs::File::create(&tmp).map_err(werr)?;
        Ok(OutFile { path: path.to_path_buf(), tmp, done: false })
    }

    /// Writes `bytes` and moves them to the path.
    ///
    /// # Errors
    /// [`PreviewError::Write`] naming the path.
    pub fn commit(mut self, bytes: &[u8]) -> Result<(), PreviewError> {
        let werr =
            |e: std::io::Error| PreviewError::Write { path: self.path.display().to_string(), reason: e.to_string() };
        std::fs::write(&self.tmp, bytes).map_err(werr)?;
        std::fs::rename(&self.tmp, &self.path).map_err(werr)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Per dataset folder: the URL of its preview, or why there is none.
pub type Written = Vec<(String, Result<String, PreviewError>)>;

/// Writes the preview of every dataset under `root` into its folder as [`PREVIEW_FILE`]
/// (`inspect --preview`); one result per dataset folder, by name.
///
/// # Errors
/// The store's, listing the root; a dataset that fails is an `Err` in its entry.
pub fn write_beside(root: &Store, opts: &PreviewOptions) -> Result<Written, StoreError> {
    let mut out = Vec::new();
    for folder in root.folders()? {
        let ds = root.child(&folder);
        let r = match Manifest::read(&ds) {
            Ok(None) => continue,
            Ok(Some(m)) => render(&ds, &m, opts).and_then(|p| {
                ds.put(PREVIEW_FILE, bytes::Bytes::from(p.png))?;
                Ok(ds.url_of(PREVIEW_FILE))
            }),
            Err(e) => Err(e.into()),
        };
        out.push((folder, r));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_urls() {
        let s = |u: &str| split_dataset_url(u);
        assert_eq!(s("staging/plants"), ("staging".into(), "plants".into()));
        assert_eq!(s("./staging/plants/"), ("./staging".into(), "plants".into()));
        assert_eq!(s("s3://bucket/staging/plants"), ("s3://bucket/staging".into(), "plants".into()));
        assert_eq!(s("s3://bucket/plants"), ("s3://bucket".into(), "plants".into()));
        assert_eq!(s("plants"), (".".into(), "plants".into()));
        assert_eq!(s("/plants"), ("/".into(), "plants".into()));
    }

    /// Every manifest `stage` accepts, hand-edited or damaged ones included, gets a preview
    /// size without a panic, at the smallest and the largest width.
    #[test]
    fn accepted_mutated_manifests_have_a_preview_size() {
        for m in crate::stage::manifest::fuzz_tests::accepted_manifests() {
            for width in [1, crate::limits::MAX_PREVIEW_WIDTH] {
                let _ = preview_size(&m, width);
            }
        }
    }
}
