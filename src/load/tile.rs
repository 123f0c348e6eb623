//! One tile's load: fetch it from the stage, then one transaction (skip or replace under a
//! per-tile advisory lock, COPY, ledger row, COMMIT), retried on transient failures.

use super::copy::{self, CopyEncoder, DecodeError};
use super::{ledger, pg, LoadOptions, BACKOFF, MAX_ATTEMPTS};
use crate::stage::manifest::{Manifest, TileRecord};
use crate::store::Store;
use pg::{qualified, reason};
use postgres::Client;
use std::io::Write;
use std::time::Duration;

/// Why one attempt at a tile failed, and whether another attempt on a fresh connection may
/// succeed (the connection broke, the server is restarting) or cannot (a bad or missing
/// tile, a statement error).
struct TileError {
    message: String,
    transient: bool,
}

impl TileError {
    fn bad(message: String) -> TileError {
        TileError { message, transient: false }
    }
}

impl From<postgres::Error> for TileError {
    fn from(e: postgres::Error) -> TileError {
        TileError { transient: pg::is_transient(&e), message: reason(&e) }
    }
}

/// Everything a worker needs to load tiles of one dataset.
pub(super) struct Job<'a> {
    pub(super) opts: &'a LoadOptions,
    pub(super) ds: &'a Store,
    pub(super) m: &'a Manifest,
    pub(super) table: &'a str,
    /// Where the rows go (the table, or the cells table behind `--coords view`).
    pub(super) data: &'a str,
    pub(super) copy_sql: String,
    /// SRID of the `geom` written into each row (`--geometry`).
    pub(super) geom_srid: Option<u32>,
    pub(super) delay: Option<Duration>,
}

pub(super) enum Outcome {
    Loaded(u64),
    Skipped,
}

/// Why [`Job::tile`] failed.
pub(super) enum Failure {
    /// This tile cannot load (bad tile, a statement error): the others go on.
    Tile(String),
    /// PostgreSQL failed transiently on every attempt: it is down, so the load stops.
    GaveUp(String),
}

impl Job<'_> {
    /// One attempt: the tile's whole transaction.
    fn attempt(
        &self,
        client: &mut Client,
        t: &TileRecord,
        parts: Option<&[bytes::Bytes]>,
        enc: &mut CopyEncoder,
    ) -> Result<Outcome, TileError> {
        let schema = &self.opts.schema;
        let mut tx = client.transaction()?;
        let key = format!("rasterstage:{}/{}", qualified(schema, self.table), t.id);
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key])?;
        let prev = tx.query_opt(
            &format!(
                "SELECT checksum, row0, col0, nrows, ncols FROM {} WHERE dataset = $1 AND tile_id = $2",
                qualified(schema, "raster_tile_loads")
            ),
            &[&self.table, &t.id],
        )?;
        if let Some(row) = prev {
            let sum: String = row.get(0);
            if sum == ledger::wanted_checksum(t) {
                return Ok(Outcome::Skipped);
            }
            let range = [row.get(1), row.get(2), row.get(3), row.get(4)];
            ledger::delete_range(&mut tx, schema, self.data, range)?;
        }
        enc.begin(self.geom_srid);
        if let Some(parts) = parts {
            let rows = crate::stage::rows::tile_rows(self.m, t, parts);
            let mut writer = tx.copy_in(&self.copy_sql)?;
            // The test hook's pause, once the first bytes are sent.
            let mut delay = self.delay;
            let mut sink = |b: &[u8]| -> std::io::Result<()> {
                writer.write_all(b)?;
                if let Some(d) = delay.take() {
                    writer.flush()?;
                    std::thread::sleep(d);
                }
                Ok(())
            };
            copy::encode_rows(&rows, enc, &mut sink).map_err(|e| match e {
                DecodeError::Bad(s) => TileError::bad(format!("unreadable tile: {s}")),
                DecodeError::Sink(e) => match e.into_inner().map(|inner| inner.downcast::<postgres::Error>()) {
                    Some(Ok(pe)) => TileError::from(*pe),
                    Some(Err(other)) => TileError::bad(format!("writing COPY data: {other}")),
                    None => TileError::bad("writing COPY data failed".into()),
                },
            })?;
            writer.finish()?;
        }
        // Nothing is committed until the tile is what dataset.json says: a NaN or infinite
        // record matches no finite sum (same_sum), so it fails here instead of passing.
        if enc.rows != t.row_count {
            return Err(TileError::bad(format!("tile holds {} rows, dataset.json says {}", enc.rows, t.row_count)));
        }
        if !crate::stage::manifest::same_sum(enc.value_sum, t.value_sum) {
            return Err(TileError::bad(format!(
                "tile values sum to {}, dataset.json says {}",
                enc.value_sum, t.value_sum
            )));
        }
        ledger::record(&mut tx, schema, self.table, t, enc.rows, enc.value_sum)?;
        tx.commit()?;
        Ok(Outcome::Loaded(enc.rows))
    }

    /// Loads one tile, retrying transient failures on a fresh connection with backoff.
    pub(super) fn tile(
        &self,
        client: &mut Option<Client>,
        t: &TileRecord,
        enc: &mut CopyEncoder,
    ) -> Result<Outcome, Failure> {
        let bytes = crate::stage::read::fetch_tile(self.ds, self.m, t).map_err(|e| Failure::Tile(e.to_string()))?;
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(BACKOFF * 2u32.pow(attempt - 1));
            }
            let r = match client {
                Some(c) => Ok(c),
                None => self
                    .opts
                    .conn
                    .connect()
                    .map(|c| client.insert(c))
                    .map_err(|e| TileError { message: e.to_string(), transient: true }),
            }
            .and_then(|c| self.attempt(c, t, bytes.as_deref(), enc));
            match r {
                Ok(o) => return Ok(o),
                Err(e) if e.transient => {
                    last = e.message;
                    tracing::warn!("{}: tile {}: attempt {} failed, retrying: {last}", self.m.name, t.id, attempt + 1);
                    *client = None;
                }
                Err(e) => return Err(Failure::Tile(e.message)),
            }
        }
        Err(Failure::GaveUp(last))
    }
}
