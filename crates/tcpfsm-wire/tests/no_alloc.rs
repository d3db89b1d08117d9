//! Parse must never allocate, and emit_ip_tcp into a Vec with enough
//! capacity must not allocate either (it only resizes): both run per packet.
//! Measured with a counting global allocator; this file holds one test so
//! no other test thread can allocate while it counts.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tcpfsm_wire::*;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        System.realloc(ptr, layout, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parse_and_emit_do_not_allocate() {
    let payload = vec![7u8; 1000];
    let mut repr = sample_repr(&payload);
    repr.options = all_options();
    let v4 = emit(V4_SRC, V4_DST, &repr);
    let v6 = emit(V6_SRC, V6_DST, &repr);
    let mut out = Vec::with_capacity(2048);

    let before = ALLOCS.load(Ordering::SeqCst);
    for _ in 0..100 {
        let a = parse_ip_tcp(&v4).unwrap();
        let b = parse_ip_tcp(&v6).unwrap();
        assert_eq!(a.tcp, b.tcp);
        emit_ip_tcp(V4_SRC, V4_DST, &a.tcp, &mut out).unwrap();
        emit_ip_tcp(V6_SRC, V6_DST, &b.tcp, &mut out).unwrap();
        assert!(parse_ip_tcp(&v4[..30]).is_err());
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "allocations on the per-packet path");
    assert_eq!(out, v6);
}
