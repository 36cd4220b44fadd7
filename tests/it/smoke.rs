use crate::common::*;

#[test]
fn layout_is_there() {
    let m = Mounted::new();
    assert_eq!(list(m.root()), vec!["by-key", "limits", "metrics", "msg", "sem", "shm", "users"]);
    assert_eq!(list(&m.path("by-key")), vec!["msg", "sem", "shm"]);
    let id = create_segment(0x1234, 4096, 0o600);
    assert_eq!(list(&m.path("shm")), vec![id.0.to_string()]);
}
