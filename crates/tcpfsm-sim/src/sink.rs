//! Where a run's events go as they happen: a [`Sink`] (the JSON writer, the diagram
//! builders, a pcap writer, or a [`Trace`] recorder for tests). Nothing keeps the whole run
//! unless a sink chooses to, so a million-segment run streams in bounded memory.
//!
//! One reordering is kept from the recorded trace: an application call's record goes before
//! the state changes and segments the call caused at the same instant ("close → FIN_WAIT_1 →
//! FIN"), though the call's result is known only after them. The [`Emitter`] holds back the
//! events of that one instant until the call returns.

use std::io;

use crate::trace::{HostInfo, Trace, TraceEvent};

/// What every sink learns before the first event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The scenario's name.
    pub title: String,
    pub seed: u64,
    pub hosts: Vec<HostInfo>,
}

/// A consumer of a run's events, in the order they happened.
pub trait Sink {
    fn begin(&mut self, _header: &Header) -> io::Result<()> {
        Ok(())
    }

    fn event(&mut self, ev: &TraceEvent) -> io::Result<()>;

    /// Every datagram put on the wire, at its send time, numbered in capture order (the
    /// `frame` of its [`crate::trace::SegmentRec`]), before its segment event.
    fn datagram(&mut self, _frame: u64, _t_us: u64, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }

    /// After the last event.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// The events so far, for a sink that keeps them ([`Recorder`]).
    fn recorded(&self) -> Option<&Trace> {
        None
    }
}

/// Keeps every event: the whole [`Trace`], for tests and library users of small runs.
#[derive(Debug, Default)]
pub struct Recorder {
    pub trace: Trace,
}

impl Sink for Recorder {
    fn begin(&mut self, h: &Header) -> io::Result<()> {
        self.trace.title = h.title.clone();
        self.trace.seed = h.seed;
        self.trace.hosts = h.hosts.clone();
        Ok(())
    }

    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        self.trace.events.push(ev.clone());
        Ok(())
    }

    fn recorded(&self) -> Option<&Trace> {
        Some(&self.trace)
    }
}

/// Feeds two sinks.
pub struct Tee<A, B>(pub A, pub B);

impl<A: Sink, B: Sink> Sink for Tee<A, B> {
    fn begin(&mut self, h: &Header) -> io::Result<()> {
        self.0.begin(h)?;
        self.1.begin(h)
    }
    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        self.0.event(ev)?;
        self.1.event(ev)
    }
    fn datagram(&mut self, frame: u64, t_us: u64, bytes: &[u8]) -> io::Result<()> {
        self.0.datagram(frame, t_us, bytes)?;
        self.1.datagram(frame, t_us, bytes)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.0.finish()?;
        self.1.finish()
    }
}

/// A reference or a box of a sink is that sink.
macro_rules! forward_sink {
    ($($t:ty),*) => {$(
        impl<S: Sink + ?Sized> Sink for $t {
            fn begin(&mut self, h: &Header) -> io::Result<()> {
                (**self).begin(h)
            }
            fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
                (**self).event(ev)
            }
            fn datagram(&mut self, frame: u64, t_us: u64, bytes: &[u8]) -> io::Result<()> {
                (**self).datagram(frame, t_us, bytes)
            }
            fn finish(&mut self) -> io::Result<()> {
                (**self).finish()
            }
            fn recorded(&self) -> Option<&Trace> {
                (**self).recorded()
            }
        }
    )*};
}

forward_sink!(&mut S, Box<S>);

/// An optional sink (`--pcap` given or not).
impl<S: Sink> Sink for Option<S> {
    fn begin(&mut self, h: &Header) -> io::Result<()> {
        self.as_mut().map_or(Ok(()), |s| s.begin(h))
    }
    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        self.as_mut().map_or(Ok(()), |s| s.event(ev))
    }
    fn datagram(&mut self, frame: u64, t_us: u64, bytes: &[u8]) -> io::Result<()> {
        self.as_mut()
            .map_or(Ok(()), |s| s.datagram(frame, t_us, bytes))
    }
    fn finish(&mut self) -> io::Result<()> {
        self.as_mut().map_or(Ok(()), |s| s.finish())
    }
    fn recorded(&self) -> Option<&Trace> {
        self.as_ref().and_then(|s| s.recorded())
    }
}

/// Hands events to a sink, holding back those of one instant behind a marked call.
pub struct Emitter<'s> {
    sink: Box<dyn Sink + 's>,
    /// Events since the mark, all at `mark`'s instant.
    staged: Vec<TraceEvent>,
    mark: Option<u64>,
    error: Option<io::Error>,
    events: u64,
}

impl<'s> Emitter<'s> {
    pub fn new(sink: Box<dyn Sink + 's>) -> Emitter<'s> {
        Emitter {
            sink,
            staged: Vec::new(),
            mark: None,
            error: None,
            events: 0,
        }
    }

    /// The first write error of the sink; once set, nothing more is written.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Events handed over so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    fn check(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    pub fn begin(&mut self, h: &Header) {
        let r = self.sink.begin(h);
        self.check(r);
    }

    fn send(&mut self, ev: &TraceEvent) {
        self.events += 1;
        if self.error.is_none() {
            let r = self.sink.event(ev);
            self.check(r);
        }
    }

    fn flush(&mut self) {
        for ev in std::mem::take(&mut self.staged) {
            self.send(&ev);
        }
    }

    /// An event that just happened.
    pub fn push(&mut self, ev: TraceEvent) {
        match self.mark {
            Some(t) if t == ev.t_us() => self.staged.push(ev),
            Some(_) => {
                self.unmark();
                self.send(&ev);
            }
            None => self.send(&ev),
        }
    }

    pub fn datagram(&mut self, frame: u64, t_us: u64, bytes: &[u8]) {
        if self.error.is_none() {
            let r = self.sink.datagram(frame, t_us, bytes);
            self.check(r);
        }
    }

    /// A call is about to be made at `now`: hold back what it causes at this instant.
    pub fn mark(&mut self, now: u64) {
        self.flush();
        self.mark = Some(now);
    }

    /// The call did not return at once (it blocks, or writes in the background): let the
    /// held events go in their own order.
    pub fn unmark(&mut self) {
        self.flush();
        self.mark = None;
    }

    /// The clock moved to `now`: a mark of an earlier instant is over.
    pub fn advance(&mut self, now: u64) {
        if self.mark.is_some_and(|t| t != now) {
            self.unmark();
        }
    }

    /// The record of the marked call: before the events it caused if it returned at the
    /// instant it was made, after everything otherwise.
    pub fn push_call(&mut self, ev: TraceEvent) {
        if self.mark == Some(ev.t_us()) {
            self.send(&ev);
            self.flush();
        } else {
            self.flush();
            self.send(&ev);
        }
        self.mark = None;
    }

    /// Lets everything out and tells the sink the run is over.
    pub fn finish(&mut self) {
        self.unmark();
        if self.error.is_none() {
            let r = self.sink.finish();
            self.check(r);
        }
    }

    /// What a recording sink holds.
    pub fn recorded(&self) -> Option<&Trace> {
        self.sink.recorded()
    }
}
