//! The label inverted index and FILTER selection over it.
//!
//! Index entries live in [`Space::Labels`] as `keys::index(name, value, id) -> series key`;
//! a FILTER ([`Filter`]) is answered by scanning the entries of its first positive term and
//! checking every matcher against each candidate's labels.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cmd::CommandError;
use crate::db::Tx;
use crate::store::{Space, StoreError, StoreRead};

use super::filter::Filter;
use super::meta::{SeriesMeta, keys};

/// The most series one FILTER may select.
pub const SELECTED_SERIES_MAX: usize = 100_000;

/// Adds `meta`'s labels to the index.
pub fn add<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8], meta: &SeriesMeta) {
    for (n, v) in &meta.info.labels {
        tx.put(Space::Labels, keys::index(n, v, meta.id), key.to_vec());
    }
}

/// Removes `meta`'s labels from the index.
pub fn remove<S: StoreRead>(tx: &mut Tx<'_, S>, meta: &SeriesMeta) {
    for (n, v) in &meta.info.labels {
        tx.delete(Space::Labels, keys::index(n, v, meta.id));
    }
}

/// A fresh series id.
pub fn next_id<S: StoreRead>(tx: &mut Tx<'_, S>) -> Result<u64, StoreError> {
    let id = match tx.get(Space::Labels, keys::NEXT_ID)? {
        None => 1,
        Some(b) => {
            let b: [u8; 8] = b.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                space: Space::Labels,
                detail: "bad series id counter".into(),
            })?;
            u64::from_be_bytes(b)
        }
    };
    tx.put(
        Space::Labels,
        keys::NEXT_ID.to_vec(),
        (id + 1).to_be_bytes().to_vec(),
    );
    Ok(id)
}

/// The series a FILTER selects, sorted by key, with their metadata.
pub fn select(
    r: &impl StoreRead,
    exprs: &[Bytes],
) -> Result<Result<Vec<(Bytes, SeriesMeta)>, CommandError>, StoreError> {
    let args: Vec<&[u8]> = exprs.iter().map(Bytes::as_ref).collect();
    let filter = match Filter::parse(&args) {
        Ok(f) => f,
        Err(e) => return Ok(Err(CommandError::other(e.to_string()))),
    };
    // Parsing guarantees a positive term; its index entries are the candidates.
    let Some((label, values)) = filter.index_terms().next() else {
        return Ok(Err(CommandError::other(
            "ERR TSDB: please provide at least one matcher",
        )));
    };
    let mut out = BTreeMap::new();
    for value in values {
        let prefix = keys::pair_prefix(label, value);
        for kv in r.scan(
            Space::Labels,
            &prefix,
            Some(&keys::prefix_end(&prefix)),
            false,
        ) {
            let (_, key) = kv?;
            if out.contains_key(key.as_slice()) {
                continue;
            }
            let Some(meta) = super::engine::load(r, &key)? else {
                continue;
            };
            let labels: Vec<(Vec<u8>, Vec<u8>)> = meta
                .info
                .labels
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            if filter.matches(&labels) {
                if out.len() == SELECTED_SERIES_MAX {
                    return Ok(Err(CommandError::other(format!(
                        "ERR TSDB: FILTER selects more than {SELECTED_SERIES_MAX} series"
                    ))));
                }
                out.insert(key, meta);
            }
        }
    }
    Ok(Ok(out
        .into_iter()
        .map(|(k, m)| (Bytes::from(k), m))
        .collect()))
}

/// Label names in use (`label: None`) or the values of one label, sorted, distinct.
pub fn label_values(r: &impl StoreRead, label: Option<&[u8]>) -> Result<Vec<Bytes>, StoreError> {
    let (start, end) = match label {
        None => keys::index_range(),
        Some(l) => {
            let p = keys::label_prefix(l);
            let e = keys::prefix_end(&p);
            (p, e)
        }
    };
    let mut out: Vec<Bytes> = Vec::new();
    let mut from = start;
    // Each step seeks past every entry of the name (or value) just found, so the loop runs
    // once per distinct result, not once per series.
    loop {
        let Some(kv) = r.scan(Space::Labels, &from, Some(&end), false).next() else {
            break;
        };
        let (k, _) = kv?;
        let Some((name, value, _)) = keys::parse_index(&k) else {
            return Err(StoreError::Corrupt {
                space: Space::Labels,
                detail: "bad index key".into(),
            });
        };
        let (found, skip) = match label {
            None => (name, keys::label_prefix(name)),
            Some(_) => (value, keys::pair_prefix(name, value)),
        };
        out.push(Bytes::copy_from_slice(found));
        from = keys::prefix_end(&skip);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, Store};

    #[test]
    fn label_discovery_lists_names_and_values_once() {
        let mut store = MemStore::new();
        let mut tx = Tx::new(&store);
        for (id, labels) in [(1, [("a", "1"), ("b", "x")]), (2, [("a", "2"), ("b", "x")])] {
            let mut m = SeriesMeta::new(id);
            m.info_mut().labels = labels
                .iter()
                .map(|(n, v)| (Bytes::from(n.to_string()), Bytes::from(v.to_string())))
                .collect();
            add(&mut tx, format!("k{id}").as_bytes(), &m);
        }
        let batch = tx.into_batch();
        store.write(batch).unwrap();
        assert_eq!(label_values(&store, None).unwrap(), ["a", "b"]);
        assert_eq!(label_values(&store, Some(b"a")).unwrap(), ["1", "2"]);
        assert_eq!(label_values(&store, Some(b"b")).unwrap(), ["x"]);
        assert!(label_values(&store, Some(b"c")).unwrap().is_empty());
    }
}
