//! Listing: the tables in /proc/sysvipc, which show every object of the
//! reader's IPC namespace in one read (O(n), no per-object system call).
//!
//! Columns are found by their header names, so a kernel that adds a column
//! does not break the parser.

use std::collections::HashMap;
use std::io;

use super::msg::{MsgStat, MsqId};
use super::sem::{SemId, SemStat};
use super::shm::{ShmId, ShmStat};
use super::{IpcPerm, Key};

/// Every segment of the calling thread's IPC namespace.
pub fn list_shm() -> io::Result<Vec<ShmStat>> {
    read_table("shm", parse_shm)
}

/// Every semaphore set of the calling thread's IPC namespace.
pub fn list_sem() -> io::Result<Vec<SemStat>> {
    read_table("sem", parse_sem)
}

/// Every message queue of the calling thread's IPC namespace.
pub fn list_msg() -> io::Result<Vec<MsgStat>> {
    read_table("msg", parse_msg)
}

/// Reads and parses /proc/sysvipc/`family`. The kernel shows the namespace
/// of the thread that opens the file.
fn read_table<T>(family: &str, parse: fn(&str) -> Result<Vec<T>, String>) -> io::Result<Vec<T>> {
    let text = std::fs::read_to_string(format!("/proc/sysvipc/{family}"))?;
    parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Parses the text of /proc/sysvipc/shm.
pub fn parse_shm(text: &str) -> Result<Vec<ShmStat>, String> {
    Table::new(text)?.parse("shmid", |id, perm, row| {
        let [segsz, nattch] = row.numbers(["size", "nattch"])?;
        let [atime, dtime, ctime] = row.numbers(["atime", "dtime", "ctime"])?;
        let [cpid, lpid] = row.numbers(["cpid", "lpid"])?;
        Ok(ShmStat { id: ShmId(id), perm, segsz, atime, dtime, ctime, cpid, lpid, nattch })
    })
}

/// Parses the text of /proc/sysvipc/sem.
pub fn parse_sem(text: &str) -> Result<Vec<SemStat>, String> {
    Table::new(text)?.parse("semid", |id, perm, row| {
        let [otime, ctime] = row.numbers(["otime", "ctime"])?;
        Ok(SemStat { id: SemId(id), perm, nsems: row.get("nsems")?, otime, ctime })
    })
}

/// Parses the text of /proc/sysvipc/msg. (It has no qbytes column: that one
/// comes only from IPC_STAT, and is 0 here.)
pub fn parse_msg(text: &str) -> Result<Vec<MsgStat>, String> {
    Table::new(text)?.parse("msqid", |id, perm, row| {
        let [stime, rtime, ctime] = row.numbers(["stime", "rtime", "ctime"])?;
        let [cbytes, qnum] = row.numbers(["cbytes", "qnum"])?;
        let [lspid, lrpid] = row.numbers(["lspid", "lrpid"])?;
        Ok(MsgStat { id: MsqId(id), perm, stime, rtime, ctime, cbytes, qnum, qbytes: 0, lspid, lrpid })
    })
}

struct Table<'a> {
    columns: HashMap<&'a str, usize>,
    lines: std::str::Lines<'a>,
}

impl<'a> Table<'a> {
    fn new(text: &'a str) -> Result<Table<'a>, String> {
        let mut lines = text.lines();
        let header = lines.next().ok_or("empty sysvipc table")?;
        let columns = header.split_whitespace().enumerate().map(|(i, name)| (name, i)).collect();
        Ok(Table { columns, lines })
    }

    /// Each row that is not blank, through `stat`, which gets the id
    /// (column `id_column`) and permission block that every table has.
    fn parse<T>(
        &self,
        id_column: &str,
        stat: impl Fn(i32, IpcPerm, &Row) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let stat_of = |row: Row| stat(row.get(id_column)?, row.perm()?, &row);
        let rows = self.lines.clone().filter(|l| !l.trim().is_empty());
        rows.map(|line| stat_of(Row { columns: &self.columns, fields: line.split_whitespace().collect() })).collect()
    }
}

struct Row<'a> {
    columns: &'a HashMap<&'a str, usize>,
    fields: Vec<&'a str>,
}

impl Row<'_> {
    fn field(&self, name: &str) -> Result<&str, String> {
        let index = *self.columns.get(name).ok_or_else(|| format!("no column {name}"))?;
        self.fields.get(index).copied().ok_or_else(|| format!("short row, no {name}"))
    }

    fn get<T: std::str::FromStr>(&self, name: &str) -> Result<T, String> {
        let text = self.field(name)?;
        text.parse().map_err(|_| format!("bad {name}: {text:?}"))
    }

    /// The columns `names`, of one type.
    fn numbers<T: std::str::FromStr + Default + Copy, const N: usize>(
        &self,
        names: [&str; N],
    ) -> Result<[T; N], String> {
        let mut values = [T::default(); N];
        for (value, name) in values.iter_mut().zip(names) {
            *value = self.get(name)?;
        }
        Ok(values)
    }

    fn perm(&self) -> Result<IpcPerm, String> {
        let mode = self.field("perms")?;
        Ok(IpcPerm {
            key: Key(self.get("key")?),
            uid: self.get("uid")?,
            gid: self.get("gid")?,
            cuid: self.get("cuid")?,
            cgid: self.get("cgid")?,
            mode: u32::from_str_radix(mode, 8).map_err(|_| format!("bad perms: {mode:?}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHM: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
         0          3  1600                  4096   812   812      1  1000  1000     0     0 1700000100 1700000050 1700000000                  4096                     0
 305419896          4   644                 65536   900     0      0     0   100     0     0          0          0 1700000300                     0                     0
        -1          5  3600                     1     1     1      2     5     6     7     8          1          2          3                  4096                     0
";

    #[test]
    fn parses_every_row_and_column() {
        let rows = parse_shm(SHM).unwrap();
        assert_eq!(rows.len(), 3);
        let first = &rows[0];
        assert_eq!(first.id, ShmId(3));
        assert_eq!(first.perm.key, Key::PRIVATE);
        assert_eq!(first.perm.mode, 0o1600);
        assert!(first.is_dest());
        assert!(!first.is_locked());
        assert_eq!(first.segsz, 4096);
        assert_eq!((first.cpid, first.lpid, first.nattch), (812, 812, 1));
        assert_eq!((first.perm.uid, first.perm.gid, first.perm.cuid, first.perm.cgid), (1000, 1000, 0, 0));
        assert_eq!((first.atime, first.dtime, first.ctime), (1700000100, 1700000050, 1700000000));
        assert_eq!(rows[1].perm.key.to_string(), "0x12345678");
        assert_eq!(rows[1].perm.gid, 100);
        assert_eq!(rows[2].perm.key.to_string(), "0xffffffff");
        assert!(rows[2].is_dest() && rows[2].is_locked());
    }

    const SEM: &str = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
      4660          0   600          3     0     0     0     0          0 1700000000
         0      32769   666          1  1000   100  1000   100 1700000500 1700000400
";

    #[test]
    fn parses_semaphore_sets() {
        let rows = parse_sem(SEM).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, SemId(0));
        assert_eq!(rows[0].perm.key.to_string(), "0x00001234");
        assert_eq!((rows[0].nsems, rows[0].perm.mode), (3, 0o600));
        assert_eq!((rows[0].otime, rows[0].ctime), (0, 1700000000));
        assert_eq!(rows[1].id, SemId(32769));
        assert!(rows[1].perm.key.is_private());
        assert_eq!((rows[1].perm.uid, rows[1].perm.gid, rows[1].otime), (1000, 100, 1700000500));
    }

    const MSG: &str = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
      4660          0   620          12          3   501   502     0     0     0     0 1700000600 1700000700 1700000000
";

    #[test]
    fn parses_message_queues() {
        let rows = parse_msg(MSG).unwrap();
        assert_eq!(rows.len(), 1);
        let q = &rows[0];
        assert_eq!((q.id, q.perm.mode, q.cbytes, q.qnum), (MsqId(0), 0o620, 12, 3));
        assert_eq!((q.lspid, q.lrpid), (501, 502));
        assert_eq!((q.stime, q.rtime, q.ctime), (1700000600, 1700000700, 1700000000));
    }

    #[test]
    fn header_only_is_empty() {
        let header = SHM.lines().next().unwrap();
        assert!(parse_shm(header).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_shm("").is_err());
        assert!(parse_shm("key shmid\nx y\n").is_err());
        let short = format!("{}\n 1 2 3\n", SHM.lines().next().unwrap());
        assert!(parse_shm(&short).is_err());
    }
}
