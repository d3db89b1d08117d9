//! JSON whose objects keep their keys in the order written (states in lifecycle order, socket
//! fields in `ss` column order, counters in the kernel's order); serde_json's own `Value`
//! would sort them.

use serde_json::Value;
use tcpfsm_states::Census;

pub(crate) enum J {
    V(Value),
    O(Vec<(&'static str, J)>),
    A(Vec<J>),
    /// An object with computed keys (group names, state names).
    K(Vec<(String, J)>),
}

impl serde::Serialize for J {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            J::V(v) => v.serialize(s),
            J::O(kv) => {
                let mut m = s.serialize_map(Some(kv.len()))?;
                for (k, v) in kv {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            J::K(kv) => {
                let mut m = s.serialize_map(Some(kv.len()))?;
                for (k, v) in kv {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            J::A(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    q.serialize_element(i)?;
                }
                q.end()
            }
        }
    }
}

pub(crate) fn v(x: impl Into<Value>) -> J {
    J::V(x.into())
}

pub(crate) fn census_json(c: &Census) -> J {
    J::K(
        c.iter()
            .map(|(s, n)| (s.name().to_string(), v(n)))
            .collect(),
    )
}
