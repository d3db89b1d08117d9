//! The symbolic constants scripts use (`SOCK_STREAM`, `O_NONBLOCK`, `POLLIN`, `EAGAIN`, …),
//! with Linux's values: the dialect is Linux's, whatever stack runs the script.

use libc as c;

/// The value of a constant word, if it is one.
pub fn value(word: &str) -> Option<i64> {
    let v: i64 = match word {
        "AF_INET" | "PF_INET" => c::AF_INET as i64,
        "AF_INET6" | "PF_INET6" => c::AF_INET6 as i64,
        "AF_UNSPEC" => c::AF_UNSPEC as i64,
        "SOCK_STREAM" => c::SOCK_STREAM as i64,
        "SOCK_DGRAM" => c::SOCK_DGRAM as i64,
        "SOCK_NONBLOCK" => c::SOCK_NONBLOCK as i64,
        "SOCK_CLOEXEC" => c::SOCK_CLOEXEC as i64,
        "IPPROTO_TCP" | "SOL_TCP" => c::IPPROTO_TCP as i64,
        "IPPROTO_IP" | "SOL_IP" => c::IPPROTO_IP as i64,
        "IPPROTO_IPV6" | "SOL_IPV6" => c::IPPROTO_IPV6 as i64,
        "IPPROTO_UDP" => c::IPPROTO_UDP as i64,
        "SOL_SOCKET" => c::SOL_SOCKET as i64,
        "F_GETFL" => c::F_GETFL as i64,
        "F_SETFL" => c::F_SETFL as i64,
        "O_RDONLY" => c::O_RDONLY as i64,
        "O_WRONLY" => c::O_WRONLY as i64,
        "O_RDWR" => c::O_RDWR as i64,
        "O_NONBLOCK" => c::O_NONBLOCK as i64,
        "POLLIN" => c::POLLIN as i64,
        "POLLPRI" => c::POLLPRI as i64,
        "POLLOUT" => c::POLLOUT as i64,
        "POLLERR" => c::POLLERR as i64,
        "POLLHUP" => c::POLLHUP as i64,
        "POLLNVAL" => c::POLLNVAL as i64,
        "POLLRDNORM" => c::POLLRDNORM as i64,
        "POLLWRNORM" => c::POLLWRNORM as i64,
        "POLLRDHUP" => c::POLLRDHUP as i64,
        "SHUT_RD" => c::SHUT_RD as i64,
        "SHUT_WR" => c::SHUT_WR as i64,
        "SHUT_RDWR" => c::SHUT_RDWR as i64,
        "MSG_PEEK" => c::MSG_PEEK as i64,
        "MSG_DONTWAIT" => c::MSG_DONTWAIT as i64,
        "MSG_WAITALL" => c::MSG_WAITALL as i64,
        "MSG_NOSIGNAL" => c::MSG_NOSIGNAL as i64,
        "MSG_MORE" => c::MSG_MORE as i64,
        "MSG_EOR" => c::MSG_EOR as i64,
        "MSG_OOB" => c::MSG_OOB as i64,
        "MSG_TRUNC" => c::MSG_TRUNC as i64,
        "NULL" => 0,
        _ => return errno_value(word).map(i64::from),
    };
    Some(v)
}

const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", c::EPERM),
    ("ENOENT", c::ENOENT),
    ("EINTR", c::EINTR),
    ("EIO", c::EIO),
    ("EBADF", c::EBADF),
    ("EAGAIN", c::EAGAIN),
    ("EWOULDBLOCK", c::EWOULDBLOCK),
    ("ENOMEM", c::ENOMEM),
    ("EACCES", c::EACCES),
    ("EFAULT", c::EFAULT),
    ("EBUSY", c::EBUSY),
    ("EEXIST", c::EEXIST),
    ("EINVAL", c::EINVAL),
    ("ENFILE", c::ENFILE),
    ("EMFILE", c::EMFILE),
    ("ENOSPC", c::ENOSPC),
    ("EPIPE", c::EPIPE),
    ("ENOTSOCK", c::ENOTSOCK),
    ("EDESTADDRREQ", c::EDESTADDRREQ),
    ("EMSGSIZE", c::EMSGSIZE),
    ("EPROTOTYPE", c::EPROTOTYPE),
    ("ENOPROTOOPT", c::ENOPROTOOPT),
    ("EPROTONOSUPPORT", c::EPROTONOSUPPORT),
    ("EOPNOTSUPP", c::EOPNOTSUPP),
    ("EAFNOSUPPORT", c::EAFNOSUPPORT),
    ("EADDRINUSE", c::EADDRINUSE),
    ("EADDRNOTAVAIL", c::EADDRNOTAVAIL),
    ("ENETDOWN", c::ENETDOWN),
    ("ENETUNREACH", c::ENETUNREACH),
    ("ENETRESET", c::ENETRESET),
    ("ECONNABORTED", c::ECONNABORTED),
    ("ECONNRESET", c::ECONNRESET),
    ("ENOBUFS", c::ENOBUFS),
    ("EISCONN", c::EISCONN),
    ("ENOTCONN", c::ENOTCONN),
    ("ESHUTDOWN", c::ESHUTDOWN),
    ("ETIMEDOUT", c::ETIMEDOUT),
    ("ECONNREFUSED", c::ECONNREFUSED),
    ("EHOSTDOWN", c::EHOSTDOWN),
    ("EHOSTUNREACH", c::EHOSTUNREACH),
    ("EALREADY", c::EALREADY),
    ("EINPROGRESS", c::EINPROGRESS),
];

/// The number of an errno name (`EAGAIN` → 11).
pub fn errno_value(name: &str) -> Option<i32> {
    ERRNOS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of an errno number; `EAGAIN` for 11 (not its alias `EWOULDBLOCK`).
pub fn errno_name(e: i32) -> &'static str {
    ERRNOS
        .iter()
        .find(|(_, v)| *v == e)
        .map(|(n, _)| *n)
        .unwrap_or("E?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_have_linux_values() {
        assert_eq!(value("SOCK_STREAM"), Some(1));
        assert_eq!(value("O_NONBLOCK"), Some(0o4000));
        assert_eq!(value("EINPROGRESS"), Some(115));
        assert_eq!(value("EWOULDBLOCK"), value("EAGAIN"));
        assert_eq!(errno_name(11), "EAGAIN");
        assert_eq!(value("SO_NOTHING"), None);
    }
}
