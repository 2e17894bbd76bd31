//! Paginated lists served from the watch cache (`limit`/`continue`), at the cache's current
//! revision or at an older one inside the history window — without a store round trip and
//! without rescanning from the first key.
//!
//! A page starts with an O(log n) seek of the cache's ordered objects to its start key. A page
//! at an older revision `R` (a continue token, or `resourceVersionMatch=Exact`) sees every object
//! as it was at `R`: an object changed after `R` is replaced by the `prev` of its first change
//! after `R` (absent when that change created it), which the history window keeps. So paging is
//! O(page + changes since R), not O(objects before the page), and one list stays one consistent
//! snapshot however long its client takes between pages. IO-free; unit-tested below.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::object::CachedObject;
use super::resource::Change;
use crate::rest::Filter;

/// What one page asks for.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    /// Key prefix of the selection (the resource, or one namespace of it).
    pub prefix: &'a str,
    pub filter: &'a Filter,
    /// The first key of the page (inclusive): a continue token's key; `None` for the first page.
    pub start: Option<&'a str>,
    /// Items per page; 0 for all.
    pub limit: usize,
}

/// One page of a list.
#[derive(Debug, Default)]
pub struct CachePage {
    pub items: Vec<Bytes>,
    /// The revision the page is a snapshot of.
    pub revision: i64,
    /// The key the next page starts at, when more selected objects exist.
    pub next_key: Option<String>,
    /// Objects from `next_key` to the end of the prefix (counted only when the filter selects
    /// everything, as Kubernetes' `remainingItemCount`).
    pub remaining: Option<i64>,
}

/// The page `req` of `objects` (current at `current`) as they were at `at`. `history` holds the
/// changes after `at` (every change above the cache's window start), oldest first.
pub fn page(
    objects: &BTreeMap<String, Arc<CachedObject>>,
    history: &VecDeque<Change>,
    current: i64,
    at: i64,
    req: &PageRequest<'_>,
) -> CachePage {
    let from = req.start.unwrap_or(req.prefix);
    let in_range = |k: &str| k.starts_with(req.prefix) && k >= from;

    // The state at `at` of every object changed since: the state before its first later change.
    let mut past: BTreeMap<&str, Option<&Arc<CachedObject>>> = BTreeMap::new();
    if at < current {
        let first = history.partition_point(|c| c.revision <= at);
        for change in history.range(first..) {
            let key = change.object.key.as_str();
            if in_range(key) {
                past.entry(key).or_insert(change.prev.as_ref());
            }
        }
    }

    let now = objects
        .range::<str, _>((Bound::Included(from), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(req.prefix))
        .map(|(k, o)| (k.as_str(), Some(o)));
    let mut merged = Merge {
        now: now.peekable(),
        past: past.into_iter().peekable(),
    };

    let mut out = CachePage {
        revision: at,
        ..CachePage::default()
    };
    for (key, obj) in merged.by_ref() {
        if !obj.matches(req.filter) {
            continue;
        }
        if req.limit > 0 && out.items.len() == req.limit {
            // The page is full and one more selected object exists: the next page starts here.
            out.next_key = Some(key.to_string());
            break;
        }
        out.items.push(obj.json.clone());
    }
    if out.next_key.is_some() && req.filter.is_everything() {
        out.remaining = Some(1 + merged.count() as i64);
    }
    out
}

/// The objects of a key range at a past revision, in key order: the current objects, overridden
/// by the past state of those changed since (which may be absent, or absent now).
struct Merge<'a, N: Iterator<Item = (&'a str, Option<&'a Arc<CachedObject>>)>> {
    now: std::iter::Peekable<N>,
    past: std::iter::Peekable<
        std::collections::btree_map::IntoIter<&'a str, Option<&'a Arc<CachedObject>>>,
    >,
}

impl<'a, N> Iterator for Merge<'a, N>
where
    N: Iterator<Item = (&'a str, Option<&'a Arc<CachedObject>>)>,
{
    type Item = (&'a str, &'a Arc<CachedObject>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let now = self.now.peek().map(|(k, _)| *k);
            let past = self.past.peek().map(|(k, _)| *k);
            let take_past = match (now, past) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(n), Some(p)) => {
                    if n == p {
                        // The object changed since: its current state is not the one wanted.
                        self.now.next();
                    }
                    p <= n
                }
            };
            let next = if take_past {
                self.past.next()
            } else {
                self.now.next()
            };
            if let Some((key, Some(obj))) = next {
                return Some((key, obj));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::ResourceInfo;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        crate::rest::resolve("", "v1", "pods").unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn pod(ns: &str, name: &str, app: &str, rev: i64) -> Arc<CachedObject> {
        let info = pods();
        let value = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app}}});
        Arc::new(CachedObject::new(
            info,
            info.store_key(ns, name),
            value,
            rev,
        ))
    }

    fn everything() -> Filter {
        Filter::parse(pods(), "", "").unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn names(p: &CachePage) -> Vec<String> {
        p.items
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
                format!(
                    "{}@{}",
                    v["metadata"]["name"].as_str().unwrap_or_default(),
                    v["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    fn map(objs: &[Arc<CachedObject>]) -> BTreeMap<String, Arc<CachedObject>> {
        objs.iter().map(|o| (o.key.clone(), o.clone())).collect()
    }

    #[test]
    fn pages_seek_to_their_start_and_count_the_rest() {
        let objs: Vec<_> = (0..10)
            .map(|i| pod("a", &format!("p{i}"), "x", i + 1))
            .collect();
        let objects = map(&objs);
        let filter = everything();
        let prefix = pods().store_namespace_prefix(None);
        let mut req = PageRequest {
            prefix: &prefix,
            filter: &filter,
            start: None,
            limit: 4,
        };
        let first = page(&objects, &VecDeque::new(), 10, 10, &req);
        assert_eq!(names(&first), ["p0@1", "p1@2", "p2@3", "p3@4"]);
        assert_eq!(first.next_key.as_deref(), Some("/registry/core/pods/a/p4"));
        assert_eq!(first.remaining, Some(6));
        req.start = Some("/registry/core/pods/a/p8");
        let last = page(&objects, &VecDeque::new(), 10, 10, &req);
        assert_eq!(names(&last), ["p8@9", "p9@10"]);
        assert_eq!((last.next_key, last.remaining), (None, None));
        // A namespace's prefix only.
        let other = pods().store_namespace_prefix(Some("b"));
        req.prefix = &other;
        req.start = None;
        assert!(
            page(&objects, &VecDeque::new(), 10, 10, &req)
                .items
                .is_empty()
        );
    }

    #[test]
    fn an_older_revision_sees_objects_as_they_were() {
        // At revision 3: p0@1, p1@2, p2@3. Then p1 is modified (4), p3 created (5), p0 deleted (6).
        let (p0, p1, p2) = (
            pod("a", "p0", "x", 1),
            pod("a", "p1", "x", 2),
            pod("a", "p2", "x", 3),
        );
        let p1b = pod("a", "p1", "y", 4);
        let p3 = pod("a", "p3", "x", 5);
        let p0gone = pod("a", "p0", "x", 6);
        let history: VecDeque<Change> = [
            (4, p1b.clone(), Some(p1.clone()), false),
            (5, p3.clone(), None, false),
            (6, p0gone, Some(p0.clone()), true),
        ]
        .into_iter()
        .map(|(revision, object, prev, deleted)| Change {
            revision,
            object,
            prev,
            deleted,
        })
        .collect();
        let objects = map(&[p1b, p2.clone(), p3]);
        let filter = everything();
        let prefix = pods().store_namespace_prefix(None);
        let req = PageRequest {
            prefix: &prefix,
            filter: &filter,
            start: None,
            limit: 2,
        };
        let at3 = page(&objects, &history, 6, 3, &req);
        assert_eq!(names(&at3), ["p0@1", "p1@2"]);
        assert_eq!(at3.remaining, Some(1));
        let next = PageRequest {
            start: at3.next_key.as_deref(),
            ..req
        };
        let rest = page(&objects, &history, 6, 3, &next);
        assert_eq!(names(&rest), ["p2@3"]);
        assert_eq!(rest.next_key, None);
        let at5 = page(&objects, &history, 6, 5, &PageRequest { limit: 0, ..req });
        assert_eq!(names(&at5), ["p0@1", "p1@4", "p2@3", "p3@5"]);
        let now = page(&objects, &history, 6, 6, &PageRequest { limit: 0, ..req });
        assert_eq!(names(&now), ["p1@4", "p2@3", "p3@5"]);
    }

    #[test]
    fn selectors_skip_objects_and_leave_the_count_out() {
        let objs: Vec<_> = (0..6)
            .map(|i| {
                pod(
                    "a",
                    &format!("p{i}"),
                    if i % 2 == 0 { "x" } else { "y" },
                    i + 1,
                )
            })
            .collect();
        let objects = map(&objs);
        let filter = Filter::parse(pods(), "app=x", "").unwrap_or_else(|e| panic!("{e:?}"));
        let prefix = pods().store_namespace_prefix(None);
        let req = PageRequest {
            prefix: &prefix,
            filter: &filter,
            start: None,
            limit: 2,
        };
        let first = page(&objects, &VecDeque::new(), 6, 6, &req);
        assert_eq!(names(&first), ["p0@1", "p2@3"]);
        assert_eq!(first.next_key.as_deref(), Some("/registry/core/pods/a/p4"));
        assert_eq!(first.remaining, None);
        let exact = PageRequest { limit: 3, ..req };
        let all = page(&objects, &VecDeque::new(), 6, 6, &exact);
        assert_eq!(names(&all), ["p0@1", "p2@3", "p4@5"]);
        assert_eq!(all.next_key, None);
    }
}
