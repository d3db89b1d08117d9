//! Socket names, checked when the script is read: each `as NAME` binds a name no other
//! statement binds, and every use refers to a name bound on an earlier line. The script is
//! one thread of control, so a name bound only later (or never) can never be there when the
//! statement using it runs: `wait until x ESTABLISHED` on such a name would only time out.
//!
//! A name may hold `$var` of enclosing `repeat … as var` blocks; iteration k of a
//! `repeat N` gives `$var` the values 0 … N−1, so `c$i` inside `repeat 3` binds c0, c1, c2.

use super::{Action, Cond, Name, Stmt};

/// One piece of a name template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    /// A repeat variable: a decimal number below `count`.
    Var {
        name: String,
        count: u32,
    },
}

#[derive(Debug, Clone)]
struct Bound {
    template: String,
    parts: Vec<Part>,
    line: usize,
}

/// The names bound so far, in file order.
#[derive(Debug, Default)]
pub(super) struct Names {
    bound: Vec<Bound>,
}

/// Splits `c$i-x` into `c`, `$i`, `-x`, giving each variable its repeat count.
fn parts(template: &str, scope: &[(String, u32)]) -> Vec<Part> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        if at > 0 {
            out.push(Part::Lit(rest[..at].to_string()));
        }
        let after = &rest[at + 1..];
        let var: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let count = scope
            .iter()
            .rev()
            .find(|(v, _)| *v == var)
            .map_or(0, |(_, n)| *n);
        rest = &after[var.len()..];
        out.push(Part::Var { name: var, count });
    }
    if !rest.is_empty() {
        out.push(Part::Lit(rest.to_string()));
    }
    out
}

/// Whether the concrete name `s` is one of the names `parts` stands for.
fn matches(parts: &[Part], s: &str) -> bool {
    match parts.split_first() {
        None => s.is_empty(),
        Some((Part::Lit(l), rest)) => s.strip_prefix(l.as_str()).is_some_and(|t| matches(rest, t)),
        Some((Part::Var { count, .. }, rest)) => {
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            // Try every split: `c$i$j` must read "c12" as 1,2 as well as 12.
            (1..=digits).any(|k| {
                let num = &s[..k];
                let canonical = k == 1 || !num.starts_with('0');
                canonical
                    && num.parse::<u64>().is_ok_and(|v| v < u64::from(*count))
                    && matches(rest, &s[k..])
            })
        }
    }
}

/// The names a template stands for in its first and last iterations, which is where two
/// templates of the same shape meet.
fn samples(parts: &[Part]) -> Vec<String> {
    let pick = |last: bool| {
        parts
            .iter()
            .map(|p| match p {
                Part::Lit(l) => l.clone(),
                Part::Var { count, .. } if last => count.saturating_sub(1).to_string(),
                Part::Var { .. } => "0".to_string(),
            })
            .collect::<String>()
    };
    let (a, b) = (pick(false), pick(true));
    if a == b {
        vec![a]
    } else {
        vec![a, b]
    }
}

impl Names {
    /// Records `as NAME` on `line`, inside repeats whose variables and counts are `scope`.
    pub(super) fn bind(
        &mut self,
        name: &Name,
        line: usize,
        scope: &[(String, u32)],
        repeat_lines: &[usize],
    ) -> Result<(), String> {
        let parts = parts(&name.0, scope);
        // A repeat whose variable is not in the name binds the same name in every iteration.
        for ((var, count), at) in scope.iter().zip(repeat_lines) {
            let used = parts
                .iter()
                .any(|p| matches!(p, Part::Var { name, .. } if name == var));
            if !used && *count > 1 {
                return Err(format!(
                    "socket name {:?} would be bound again by every iteration of the repeat \
                     at line {at}; put ${var} in it (e.g. {}${var})",
                    name.0, name.0
                ));
            }
        }
        let new = samples(&parts);
        if let Some(b) = self.bound.iter().find(|b| {
            b.template == name.0
                || new.iter().any(|s| matches(&b.parts, s))
                || samples(&b.parts).iter().any(|s| matches(&parts, s))
        }) {
            return Err(format!(
                "socket name {:?} is already bound at line {} (`as NAME` needs a name of its own)",
                name.0, b.line
            ));
        }
        self.bound.push(Bound {
            template: name.0.clone(),
            parts,
            line,
        });
        Ok(())
    }

    /// Checks that `name` (used on `line`) refers to a socket bound on an earlier line.
    pub(super) fn check_use(
        &self,
        name: &Name,
        scope: &[(String, u32)],
        later: Option<usize>,
    ) -> Result<(), String> {
        let parts = parts(&name.0, scope);
        let wanted = samples(&parts);
        let known = self
            .bound
            .iter()
            .any(|b| b.template == name.0 || wanted.iter().all(|s| matches(&b.parts, s)));
        if known {
            return Ok(());
        }
        let mut msg = format!(
            "no socket named {:?} (create it with listen, accept or connect)",
            name.0
        );
        match later {
            Some(l) => msg.push_str(&format!(
                "; it is created only at line {l}, after this line runs"
            )),
            None if self.bound.is_empty() => msg.push_str("; the script creates no socket"),
            None => {
                let names: Vec<&str> = self.bound.iter().map(|b| b.template.as_str()).collect();
                msg.push_str(&format!("; sockets: {}", names.join(", ")));
            }
        }
        Err(msg)
    }
}

/// The repeat variables in scope with their counts, innermost last.
type Scope = [(String, u32)];

/// What [`walk`] calls for each name: `(line, name, binds, scope, repeat lines)`.
type Visit<'a, 'f> =
    &'f mut dyn FnMut(usize, &'a Name, bool, &Scope, &[usize]) -> Result<(), String>;

/// Every socket name of `stmts` a statement binds or uses, in file order: `(line, name, binds)`.
fn walk<'a>(
    stmts: &'a [Stmt],
    scope: &mut Vec<(String, u32)>,
    repeat_lines: &mut Vec<usize>,
    f: Visit<'a, '_>,
) -> Result<(), (usize, String)> {
    for st in stmts {
        let mut each = |name: &'a Name, binds: bool| {
            f(st.line, name, binds, scope, repeat_lines).map_err(|m| (st.line, m))
        };
        match &st.action {
            Action::Listen { name, .. } | Action::Connect { name, .. } => each(name, true)?,
            Action::Accept { listener, name, .. } => {
                each(listener, false)?;
                each(name, true)?;
            }
            Action::Send { sock, .. }
            | Action::Recv { sock, .. }
            | Action::Shutdown { sock, .. }
            | Action::Close { sock, .. }
            | Action::Abort { sock, .. } => each(sock, false)?,
            Action::WaitUntil { conds, .. } => {
                for c in conds {
                    if let Some(n) = cond_name(c) {
                        each(n, false)?;
                    }
                }
            }
            Action::Expect(c) => {
                if let Some(n) = cond_name(c) {
                    each(n, false)?;
                }
            }
            Action::Repeat { count, var, body } => {
                scope.push((var.clone(), *count));
                repeat_lines.push(st.line);
                let r = walk(body, scope, repeat_lines, f);
                scope.pop();
                repeat_lines.pop();
                r?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn cond_name(c: &Cond) -> Option<&Name> {
    match c {
        Cond::InState(n, _)
        | Cond::Result(n, _)
        | Cond::Closed(n)
        | Cond::Error(n)
        | Cond::Eof(n) => Some(n),
        Cond::Quiet | Cond::Count(..) | Cond::AtLeast(..) => None,
    }
}

/// Checks every binding and use of the script; the first problem, with its line.
pub(super) fn check(stmts: &[Stmt]) -> Result<(), (usize, String)> {
    // First every binding with its line, to tell "created later" from "never created".
    let mut all: Vec<(usize, Vec<Part>)> = Vec::new();
    walk(
        stmts,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut |line, name, binds, scope, _| {
            if binds {
                all.push((line, parts(&name.0, scope)));
            }
            Ok(())
        },
    )?;
    let mut names = Names::default();
    walk(
        stmts,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut |line, name, binds, scope, rl| {
            if binds {
                return names.bind(name, line, scope, rl);
            }
            let wanted = samples(&parts(&name.0, scope));
            let later = all
                .iter()
                .find(|(l, p)| *l >= line && wanted.iter().all(|s| matches(p, s)))
                .map(|(l, _)| *l);
            names.check_use(name, scope, later)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(v: &[(&str, u32)]) -> Vec<(String, u32)> {
        v.iter().map(|(a, b)| (a.to_string(), *b)).collect()
    }

    #[test]
    fn a_template_stands_for_its_iterations_only() {
        let p = parts("c$i", &scope(&[("i", 16)]));
        assert!(matches(&p, "c0") && matches(&p, "c15"));
        assert!(!matches(&p, "c16") && !matches(&p, "c01") && !matches(&p, "c"));
        let p = parts("c$i$j", &scope(&[("i", 2), ("j", 20)]));
        assert!(matches(&p, "c119") && matches(&p, "c05"));
        assert!(!matches(&p, "c220"));
    }

    #[test]
    fn overlapping_bindings_are_caught_and_disjoint_ones_pass() {
        let mut n = Names::default();
        let sc = scope(&[("i", 16)]);
        n.bind(&Name("c$i".into()), 3, &sc, &[2]).unwrap();
        n.bind(&Name("c16".into()), 9, &[], &[]).unwrap();
        let e = n.bind(&Name("c15".into()), 10, &[], &[]).unwrap_err();
        assert!(e.contains("already bound at line 3"), "{e}");
        let e = n
            .bind(&Name("c$k".into()), 12, &scope(&[("k", 2)]), &[11])
            .unwrap_err();
        assert!(e.contains("already bound at line 3"), "{e}");
    }

    #[test]
    fn uses_must_name_a_bound_socket() {
        let mut n = Names::default();
        n.bind(&Name("r$i".into()), 3, &scope(&[("i", 24)]), &[2])
            .unwrap();
        assert!(n.check_use(&Name("r23".into()), &[], None).is_ok());
        assert!(n.check_use(&Name("r24".into()), &[], None).is_err());
        assert!(n
            .check_use(&Name("r$i".into()), &scope(&[("i", 24)]), None)
            .is_ok());
        assert!(n.check_use(&Name("x".into()), &[], None).is_err());
    }
}
