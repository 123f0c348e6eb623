//! Rewrites the column order of float columns in a Parquet footer so that older readers use
//! their min/max statistics.
//!
//! parquet-rs 60 declares the IEEE-754 total order (`ColumnOrder::IEEE_754_TOTAL_ORDER`) for
//! every FLOAT and DOUBLE column. Arrow C++ (pyarrow 26, and so pandas, Dask and GeoPandas)
//! does not know that order yet and ignores the statistics of those columns, so it cannot
//! skip tiles by `x`, `y` or `value`. The older type-defined order means the same thing for
//! the values tiles hold (never NaN: invalid cells are not written), and every reader knows
//! it. In Thrift's compact encoding both orders are a one-field union of an empty struct,
//! differing only in the field id, so the change is one byte per column and the footer keeps
//! its length.

/// Union field id of `TYPE_ORDER` in `ColumnOrder` (parquet.thrift).
const TYPE_ORDER: u8 = 1;
/// Union field id of `IEEE_754_TOTAL_ORDER`.
const IEEE_754_TOTAL_ORDER: u8 = 2;
/// Compact-protocol type code of a struct.
const STRUCT: u8 = 12;
/// Nesting depth accepted while skipping fields; a footer written by parquet-rs nests far less.
const MAX_DEPTH: usize = 64;

/// Rewrites, in place, every `IEEE_754_TOTAL_ORDER` column order of the Parquet file `file`
/// (a whole file in memory) to `TYPE_ORDER`; returns how many columns it changed. A footer
/// it cannot follow is left unchanged (0): the statistics are then only unseen by some
/// readers, never wrong.
pub fn type_defined_float_orders(file: &mut [u8]) -> usize {
    let n = file.len();
    if n < 12 || &file[n - 4..] != b"PAR1" {
        return 0;
    }
    let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let Some(start) = (n - 8).checked_sub(len) else { return 0 };
    let footer = &mut file[start..n - 8];
    let mut r = Reader { buf: footer, pos: 0 };
    // Positions of the union field headers to rewrite, collected first: the file is only
    // changed once the whole footer has been followed to its end.
    let Some(positions) = r.column_orders() else { return 0 };
    for &p in &positions {
        footer[p] = (TYPE_ORDER << 4) | STRUCT;
    }
    positions.len()
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        let end = self.pos.checked_add(usize::try_from(n).ok()?)?;
        (end <= self.buf.len()).then(|| self.pos = end)
    }

    /// The next field header of a struct: `None` at its end (stop), else `(id, type)`.
    fn field(&mut self, last: i16) -> Option<Option<(i16, u8)>> {
        let b = self.byte()?;
        if b == 0 {
            return Some(None);
        }
        let (delta, typ) = (b >> 4, b & 0x0f);
        let id = if delta == 0 {
            let z = self.varint()?;
            i16::try_from((z >> 1) as i64 ^ -((z & 1) as i64)).ok()?
        } else {
            last.checked_add(i16::from(delta))?
        };
        Some(Some((id, typ)))
    }

    /// `(size, element type)` of a list or set header.
    fn list(&mut self) -> Option<(u64, u8)> {
        let b = self.byte()?;
        let size = if b >> 4 == 15 { self.varint()? } else { u64::from(b >> 4) };
        Some((size, b & 0x0f))
    }

    /// Skips one value of compact type `typ`.
    fn value(&mut self, typ: u8, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match typ {
            1 | 2 => Some(()),
            3 => self.skip(1),
            4..=6 => self.varint().map(|_| ()),
            7 => self.skip(8),
            8 => self.varint().and_then(|n| self.skip(n)),
            9 | 10 => {
                let (size, elem) = self.list()?;
                for _ in 0..size {
                    // Booleans in a list are one byte each.
                    if matches!(elem, 1 | 2) {
                        self.skip(1)?;
                    } else {
                        self.value(elem, depth + 1)?;
                    }
                }
                Some(())
            }
            11 => {
                let size = self.varint()?;
                if size == 0 {
                    return Some(());
                }
                let kv = self.byte()?;
                for _ in 0..size {
                    self.value(kv >> 4, depth + 1)?;
                    self.value(kv & 0x0f, depth + 1)?;
                }
                Some(())
            }
            STRUCT => self.skip_struct(depth + 1),
            _ => None,
        }
    }

    fn skip_struct(&mut self, depth: usize) -> Option<()> {
        let mut last = 0;
        while let Some((id, typ)) = self.field(last)? {
            self.value(typ, depth)?;
            last = id;
        }
        Some(())
    }

    /// Follows `FileMetaData` to its end and returns the positions of the
    /// `IEEE_754_TOTAL_ORDER` union headers in field 7 (`column_orders`).
    fn column_orders(&mut self) -> Option<Vec<usize>> {
        let mut found = Vec::new();
        let mut last = 0;
        while let Some((id, typ)) = self.field(last)? {
            if id == 7 && typ == 9 {
                let (size, elem) = self.list()?;
                if elem != STRUCT {
                    return None;
                }
                for _ in 0..size {
                    let at = self.pos;
                    if self.buf.get(at) == Some(&((IEEE_754_TOTAL_ORDER << 4) | STRUCT)) {
                        found.push(at);
                    }
                    self.skip_struct(1)?;
                }
            } else {
                self.value(typ, 1)?;
            }
            last = id;
        }
        (self.pos == self.buf.len()).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float32Array, Float64Array, Int32Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{ColumnOrder, SortOrder};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use std::sync::Arc;

    fn file(columns: usize) -> Vec<u8> {
        let mut fields = vec![Field::new("row_idx", DataType::Int32, false)];
        let mut arrays: Vec<arrow_array::ArrayRef> = vec![Arc::new(Int32Array::from(vec![3, 1, 2]))];
        for i in 0..columns {
            fields.push(Field::new(format!("d{i}"), DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from(vec![0.5, -2.0, 7.25])));
            fields.push(Field::new(format!("f{i}"), DataType::Float32, true));
            arrays.push(Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.5)])));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        let mut w = ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn float_orders_become_type_defined_and_statistics_stay() {
        // 3 columns (short list header) and 41 (long list header).
        for n in [1, 20] {
            let mut bytes = file(n);
            let len = bytes.len();
            assert_eq!(type_defined_float_orders(&mut bytes), 2 * n);
            assert_eq!(bytes.len(), len);
            let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
            let meta = reader.metadata();
            let orders = meta.file_metadata().column_orders().unwrap();
            assert!(orders.iter().all(|o| matches!(o, ColumnOrder::TYPE_DEFINED_ORDER(_))), "{orders:?}");
            assert_eq!(orders[1], ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::SIGNED));
            let stats = meta.row_group(0).column(1).statistics().unwrap();
            assert_eq!(stats.min_bytes_opt().unwrap(), (-2.0f64).to_le_bytes());
            assert_eq!(stats.max_bytes_opt().unwrap(), 7.25f64.to_le_bytes());
            // A second pass finds nothing left to change.
            assert_eq!(type_defined_float_orders(&mut bytes), 0);
        }
    }

    #[test]
    fn footers_it_cannot_follow_are_left_alone() {
        let good = file(1);
        let mut cut = good[..good.len() - 9].to_vec();
        cut.extend_from_slice(&good[good.len() - 8..]);
        let before = cut.clone();
        assert_eq!(type_defined_float_orders(&mut cut), 0);
        assert_eq!(cut, before);
        for mut junk in
            [vec![], b"PAR1".to_vec(), vec![0xff; 40], [&[0xffu8; 30][..], &[255, 255, 255, 255], b"PAR1"].concat()]
        {
            let before = junk.clone();
            assert_eq!(type_defined_float_orders(&mut junk), 0);
            assert_eq!(junk, before);
        }
    }
}
