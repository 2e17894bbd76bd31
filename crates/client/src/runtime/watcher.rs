//! The watcher: list → watch → re-list, as one endless stream of events.
//!
//! It lists (optionally in pages), then watches from the list's resourceVersion, keeps the
//! resourceVersion of every event and bookmark it sees, and
//! * resumes the watch from there when the stream ends or breaks (no event lost, none repeated);
//! * re-lists from scratch when the apiserver answers 410 Expired (the resourceVersion was
//!   compacted, or the watcher was too slow and was dropped);
//! * waits with exponential backoff after every failure (800 ms doubling to 30 s by default),
//!   yielding the error so callers can log it.
//!
//! A re-list is announced by [`Event::Init`] and completed by [`Event::InitDone`], so a
//! [`super::reflector`] can replace its whole state (dropping objects deleted while it was not
//! watching). The model is kube-rs' `kube_runtime::watcher`.

use std::collections::VecDeque;

use futures::{Stream, StreamExt};

use super::backoff::Backoff;
use crate::api::{Api, Object, WatchStream};
use crate::error::{Error, Result};
use crate::object::{ResourceExt, WatchEvent};
use crate::params::{ListParams, WatchParams};

/// What a watcher tells its consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<K> {
    /// An object was created or changed while watching.
    Apply(K),
    /// An object was deleted while watching (the last state it had).
    Delete(K),
    /// A (re-)list starts: the objects that follow as `InitApply` are the whole state.
    Init,
    /// One object of the (re-)list.
    InitApply(K),
    /// The (re-)list is complete; objects not seen since `Init` are gone.
    InitDone,
}

impl<K> Event<K> {
    /// The object this event is about (none for `Init` / `InitDone`).
    pub fn object(&self) -> Option<&K> {
        match self {
            Event::Apply(k) | Event::Delete(k) | Event::InitApply(k) => Some(k),
            Event::Init | Event::InitDone => None,
        }
    }
}

/// How the initial list is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListSemantic {
    /// A consistent list: it contains every write acknowledged before it (the default).
    #[default]
    MostRecent,
    /// Whatever the apiserver's cache has (resourceVersion "0"): cheaper, possibly a little
    /// behind; the watch that follows catches up.
    Any,
}

/// What to watch and how.
#[derive(Debug, Clone)]
pub struct Config {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Items per list page. `None` (the default) lists everything at once, which the apiserver
    /// serves from its watch cache without touching the store; paged lists read the store.
    pub page_size: Option<i64>,
    pub list_semantic: ListSemantic,
    /// Ask for bookmarks, so a resumed watch starts from a recent resourceVersion.
    pub bookmarks: bool,
    /// Delays between failed attempts.
    pub backoff: Backoff,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            label_selector: None,
            field_selector: None,
            page_size: None,
            list_semantic: ListSemantic::MostRecent,
            bookmarks: true,
            backoff: Backoff::default(),
        }
    }
}

impl Config {
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    pub fn page_size(mut self, n: i64) -> Self {
        self.page_size = Some(n);
        self
    }

    pub fn any_semantic(mut self) -> Self {
        self.list_semantic = ListSemantic::Any;
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    fn list_params(&self, continue_token: Option<&str>) -> ListParams {
        let mut lp = ListParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            limit: self.page_size,
            ..ListParams::default()
        };
        if self.list_semantic == ListSemantic::Any && self.page_size.is_none() {
            lp = lp.any_version();
        }
        if let Some(token) = continue_token {
            lp = lp.continue_token(token);
        }
        lp
    }

    fn watch_params(&self) -> WatchParams {
        WatchParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            bookmarks: self.bookmarks,
        }
    }
}

/// Where the watcher is.
enum State<K> {
    /// Nothing known: start a list.
    Empty,
    /// Listing; `continue_token` is the next page's.
    Listing { continue_token: Option<String> },
    /// Listed (or resuming) at `resource_version`: open a watch.
    Listed { resource_version: String },
    /// Watching; `resource_version` is the newest seen.
    Watching {
        resource_version: String,
        stream: WatchStream<K>,
    },
}

struct Watcher<K> {
    api: Api<K>,
    config: Config,
    state: State<K>,
    /// Events decided but not yet handed out (a list page yields many).
    ready: VecDeque<Event<K>>,
    backoff: Backoff,
    /// Wait this long before the next request (set after a failure).
    delay: Option<std::time::Duration>,
}

impl<K: Object> Watcher<K> {
    fn fail(&mut self, err: Error) -> Result<Event<K>> {
        self.delay = Some(self.backoff.next_delay());
        Err(err)
    }

    /// Advances the state machine until it has something to tell.
    async fn step(&mut self) -> Result<Event<K>> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Ok(ev);
            }
            if let Some(delay) = self.delay.take() {
                tokio::time::sleep(delay).await;
            }
            match std::mem::replace(&mut self.state, State::Empty) {
                State::Empty => {
                    self.state = State::Listing {
                        continue_token: None,
                    };
                    return Ok(Event::Init);
                }
                State::Listing { continue_token } => {
                    let lp = self.config.list_params(continue_token.as_deref());
                    match self.api.list(&lp).await {
                        Ok(page) => {
                            self.backoff.reset();
                            self.ready
                                .extend(page.items.into_iter().map(Event::InitApply));
                            self.state = match page.continue_token {
                                Some(token) => State::Listing {
                                    continue_token: Some(token),
                                },
                                None => {
                                    self.ready.push_back(Event::InitDone);
                                    State::Listed {
                                        resource_version: page.resource_version,
                                    }
                                }
                            };
                        }
                        Err(err) => {
                            // A continue token too old to use: the list starts over.
                            self.state = if err.is_expired() {
                                self.ready.push_back(Event::Init);
                                State::Listing {
                                    continue_token: None,
                                }
                            } else {
                                State::Listing { continue_token }
                            };
                            return self.fail(err);
                        }
                    }
                }
                State::Listed { resource_version } => {
                    match self
                        .api
                        .watch(&self.config.watch_params(), &resource_version)
                        .await
                    {
                        Ok(stream) => {
                            self.state = State::Watching {
                                resource_version,
                                stream,
                            };
                        }
                        Err(err) => {
                            self.state = if err.is_expired() {
                                State::Empty
                            } else {
                                State::Listed { resource_version }
                            };
                            return self.fail(err);
                        }
                    }
                }
                State::Watching {
                    mut resource_version,
                    mut stream,
                } => {
                    let next = stream.next().await;
                    let outcome = match next {
                        Some(Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj))) => {
                            resource_version = obj.resource_version().unwrap_or(resource_version);
                            Some(Ok(Event::Apply(obj)))
                        }
                        Some(Ok(WatchEvent::Deleted(obj))) => {
                            resource_version = obj.resource_version().unwrap_or(resource_version);
                            Some(Ok(Event::Delete(obj)))
                        }
                        Some(Ok(WatchEvent::Bookmark(rv))) => {
                            if !rv.is_empty() {
                                resource_version = rv;
                            }
                            None
                        }
                        Some(Ok(WatchEvent::Error(status))) => Some(Err(Error::Api(status))),
                        Some(Err(err)) => Some(Err(err)),
                        None => {
                            // The apiserver ended the watch: resume where it stopped.
                            tracing::debug!(%resource_version, "watch ended; resuming");
                            self.state = State::Listed { resource_version };
                            continue;
                        }
                    };
                    match outcome {
                        None => {
                            self.state = State::Watching {
                                resource_version,
                                stream,
                            };
                        }
                        Some(Ok(ev)) => {
                            self.backoff.reset();
                            self.state = State::Watching {
                                resource_version,
                                stream,
                            };
                            return Ok(ev);
                        }
                        Some(Err(err)) if err.is_expired() => {
                            // Too old (compacted, or dropped as a slow watcher): the only way
                            // to a correct state is a new list. Expected; not an error.
                            tracing::info!(%resource_version, %err, "watch expired; re-listing");
                            self.delay = Some(self.backoff.next_delay());
                            self.state = State::Empty;
                        }
                        Some(Err(err)) => {
                            tracing::debug!(%resource_version, %err, "watch failed; resuming");
                            self.state = State::Listed { resource_version };
                            return self.fail(err);
                        }
                    }
                }
            }
        }
    }
}

/// An endless stream of [`Event`]s for the objects of `api` that `config` selects; see the
/// module docs. Errors are reported and retried, never fatal: the stream does not end.
pub fn watcher<K: Object>(
    api: Api<K>,
    config: Config,
) -> impl Stream<Item = Result<Event<K>>> + Send + 'static {
    let backoff = config.backoff.clone();
    let state = Watcher {
        api,
        config,
        state: State::Empty,
        ready: VecDeque::new(),
        backoff,
        delay: None,
    };
    futures::stream::unfold(state, |mut w| async move {
        let item = w.step().await;
        Some((item, w))
    })
}

/// Only the objects a watcher's events carry (`Apply`, `InitApply`, `Delete` objects).
pub fn objects<K, S>(stream: S) -> impl Stream<Item = Result<K>>
where
    S: Stream<Item = Result<Event<K>>>,
{
    stream.filter_map(|ev| async move {
        match ev {
            Ok(Event::Apply(k) | Event::InitApply(k) | Event::Delete(k)) => Some(Ok(k)),
            Ok(Event::Init | Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        }
    })
}
