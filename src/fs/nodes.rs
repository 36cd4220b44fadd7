//! Per-node dispatch: which family module answers for a [`Node`].

use super::access::{Caller, Want};
use super::error::{Error, Result};
use super::inode::Node;
use super::{Attr, SetAttr, sem, shm};

pub fn attr(node: &Node) -> Result<Attr> {
    match node {
        Node::Segment(_) | Node::ShmKeyLink(_) => shm::node_attr(node),
        Node::SemSet(_) | Node::Semaphore(..) | Node::SemKeyLink(_) => sem::attr(node),
    }
}

pub fn readlink(node: &Node) -> Result<Vec<u8>> {
    match *node {
        Node::ShmKeyLink(ident) => shm::link_target(ident),
        Node::SemKeyLink(ident) => sem::link_target(ident),
        _ => Err(Error::Invalid),
    }
}

/// Links have nothing to change; directories and files go to their family.
pub fn setattr(node: &Node, change: SetAttr, caller: &Caller) -> Result<Attr> {
    match *node {
        Node::SemSet(ident) => sem::setattr_set(ident, change, caller),
        Node::Semaphore(ident, _) => sem::setattr_semaphore(ident, change),
        _ if change == SetAttr::default() => attr(node),
        _ => Err(Error::NotPermitted),
    }
}

pub fn access(node: &Node, want: Want, caller: &Caller) -> Result<()> {
    match *node {
        Node::Segment(ident) => shm::access(ident, want, caller),
        Node::SemSet(ident) | Node::Semaphore(ident, _) => sem::access(ident, node, want, caller),
        Node::ShmKeyLink(_) | Node::SemKeyLink(_) => Ok(()),
    }
}

pub fn xattr_names(node: &Node) -> Result<Vec<&'static str>> {
    match *node {
        Node::Segment(ident) => shm::xattr_names(ident),
        Node::SemSet(_) | Node::Semaphore(..) => {
            attr(node)?;
            Ok(sem::xattr_names(node).to_vec())
        }
        Node::ShmKeyLink(_) | Node::SemKeyLink(_) => Ok(Vec::new()),
    }
}

pub fn xattr(node: &Node, name: &str) -> Result<String> {
    match *node {
        Node::Segment(ident) => shm::xattr(ident, name),
        Node::SemSet(_) | Node::Semaphore(..) => sem::xattr(node, name),
        Node::ShmKeyLink(_) | Node::SemKeyLink(_) => Err(Error::NoAttribute),
    }
}

/// Every attribute ipcfs shows is the kernel's and read-only.
pub fn is_xattr_name(node: &Node, name: &str) -> bool {
    match node {
        Node::Segment(_) => shm::is_xattr_name(name),
        _ => sem::xattr_names(node).contains(&name),
    }
}
