//! Per-node dispatch: which family module answers for a [`Node`].

use super::access::{Caller, Want};
use super::error::{Error, Result};
use super::family;
use super::inode::Node;
use super::msg::Queues;
use super::sem::Sets;
use super::shm::Segments;
use super::types::{Attr, SetAttr};
use super::{limits, metrics, msg, ns_tree, sem, shm, users};

pub fn attr(node: &Node) -> Result<Attr> {
    match node {
        Node::Segment(ident) => family::attr::<Segments>(*ident, false),
        Node::ShmKeyLink(ident) => family::attr::<Segments>(*ident, true),
        Node::SemSet(_) | Node::Semaphore(..) | Node::SemKeyLink(_) => sem::attr(node),
        Node::Queue(_) | Node::QueueSubDir(..) | Node::QueueFile { .. } | Node::MsgKeyLink(_) => msg::attr(node),
        Node::Limit(limit) => limits::attr(*limit),
        Node::Metrics => Err(Error::NotSupported),
        Node::UsedObject(..) => Ok(users::dir_attr()),
        Node::User { pid, .. } => users::link_attr(*pid),
        Node::OwnNamespace | Node::PidLink(_) | Node::NameLink { .. } => ns_tree::link_attr(node),
    }
}

pub fn readlink(node: &Node, caller: &Caller) -> Result<Vec<u8>> {
    match *node {
        Node::ShmKeyLink(ident) => family::link_target::<Segments>(ident),
        Node::SemKeyLink(ident) => family::link_target::<Sets>(ident),
        Node::MsgKeyLink(ident) => family::link_target::<Queues>(ident),
        Node::OwnNamespace | Node::PidLink(_) | Node::NameLink { .. } => ns_tree::link_target(node, caller),
        Node::User { pid, .. } => Ok(users::link_target(pid)),
        _ => Err(Error::Invalid),
    }
}

/// Links have nothing to change; directories and files go to their family.
pub fn setattr(node: &Node, change: SetAttr, caller: &Caller) -> Result<Attr> {
    match *node {
        Node::SemSet(ident) => sem::setattr_set(ident, change, caller),
        Node::Semaphore(ident, num) => sem::setattr_semaphore(ident, num, change, caller),
        Node::Queue(ident) => msg::setattr_queue(ident, change, caller),
        Node::QueueFile { .. } => msg::setattr_file(node, change),
        Node::Limit(limit) => limits::setattr(limit, change, caller),
        _ if change == SetAttr::default() => attr(node),
        _ => Err(Error::NotPermitted),
    }
}

pub fn access(node: &Node, want: Want, caller: &Caller) -> Result<()> {
    match *node {
        Node::Segment(ident) => shm::access(ident, want, caller),
        Node::SemSet(ident) | Node::Semaphore(ident, _) => sem::access(ident, node, want, caller),
        Node::Queue(ident) | Node::QueueSubDir(ident, _) | Node::QueueFile { ident, .. } => {
            msg::access(ident, node, want, caller)
        }
        Node::ShmKeyLink(_) | Node::SemKeyLink(_) | Node::MsgKeyLink(_) => Ok(()),
        Node::OwnNamespace | Node::PidLink(_) | Node::NameLink { .. } => Ok(()),
        Node::Limit(limit) => limits::access(limit, want, caller),
        Node::Metrics => metrics::access(want),
        Node::UsedObject(..) | Node::User { .. } => {
            if want.includes_write() {
                Err(Error::AccessDenied)
            } else {
                Ok(())
            }
        }
    }
}

fn family_xattr_names(node: &Node) -> &'static [&'static str] {
    match node {
        Node::SemSet(_) | Node::Semaphore(..) => sem::xattr_names(node),
        Node::Queue(_) => msg::xattr_names(node),
        _ => &[],
    }
}

pub fn xattr_names(node: &Node) -> Result<Vec<&'static str>> {
    match *node {
        Node::Segment(ident) => shm::xattr_names(ident),
        Node::Limit(limit) => limits::xattr_names(limit),
        Node::UsedObject(..) => Ok(users::XATTRS.to_vec()),
        _ => {
            attr(node)?;
            Ok(family_xattr_names(node).to_vec())
        }
    }
}

pub fn xattr(node: &Node, name: &str, caller: &Caller) -> Result<String> {
    match *node {
        Node::Segment(ident) => shm::xattr(ident, name),
        Node::SemSet(_) | Node::Semaphore(..) => sem::xattr(node, name, caller),
        Node::Queue(_) => msg::xattr(node, name),
        Node::Limit(limit) => limits::xattr(limit, name),
        _ => Err(Error::NoAttribute),
    }
}

/// setfattr: only a queue's `user.ipc.qbytes` can be set; the other
/// attributes are the kernel's and read-only (EPERM), unknown ones EOPNOTSUPP.
pub fn set_xattr(node: &Node, name: &str, value: &[u8], caller: &Caller) -> Result<()> {
    match node {
        Node::Queue(_) => msg::set_xattr(node, name, value, caller),
        Node::Segment(_) if shm::is_xattr_name(name) => Err(Error::NotPermitted),
        Node::Limit(limit) if limits::xattr_names(*limit)?.contains(&name) => Err(Error::NotPermitted),
        _ if family_xattr_names(node).contains(&name) => Err(Error::NotPermitted),
        _ => Err(Error::NotSupported),
    }
}
