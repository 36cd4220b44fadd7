#!/usr/bin/env python3
"""Performs IPC operations and prints one result per operation: "ok" or the
errno name. Two kinds of operation, so that a test can run the same request
through an ipcfs mount and directly through the system calls, as the same
user, and compare:

  fs_read PATH              open O_RDONLY and read           (through the mount)
  fs_write PATH TEXT        open O_WRONLY|O_NONBLOCK, write TEXT
  fs_chmod PATH MODE        chmod (octal)
  fs_chown PATH UID GID     chown
  fs_unlink PATH            unlink
  fs_rmdir PATH             rmdir

  shm_read ID               shmat(SHM_RDONLY)                (directly)
  shm_write ID TEXT         shmat(0), write TEXT at offset 0
  sem_get ID NUM            semctl(GETVAL)
  sem_setval ID NUM VALUE   semctl(SETVAL)
  sem_op ID NUM DELTA       semop(DELTA, IPC_NOWAIT)
  msg_send ID TYPE TEXT     msgsnd(IPC_NOWAIT)
  msg_recv ID TYPE          msgrcv(IPC_NOWAIT)
  {shm,sem,msg}_set ID UID GID MODE   *ctl(IPC_SET)  (msg keeps its qbytes)
  {shm,sem,msg}_rm ID       *ctl(IPC_RMID)

Operations are given as arguments, separated by a lone ";".
"""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
libc.msgrcv.restype = ctypes.c_ssize_t
libc.msgrcv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long, ctypes.c_int]
libc.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

IPC_RMID, IPC_SET, IPC_STAT = 0, 1, 2
IPC_NOWAIT, SHM_RDONLY = 0o4000, 0o10000
GETVAL, SETVAL = 12, 16


class Failed(Exception):
    pass


def check(result):
    if result == -1 or result is None or result == ctypes.c_void_p(-1).value:
        raise Failed(errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())))
    return result


def ipc_set_buffer(uid, gid, mode, qbytes=0):
    # struct ipc_perm starts every *id_ds: key, uid, gid, cuid, cgid, mode.
    buf = ctypes.create_string_buffer(256)
    ctypes.c_uint32.from_buffer(buf, 4).value = uid
    ctypes.c_uint32.from_buffer(buf, 8).value = gid
    ctypes.c_uint16.from_buffer(buf, 20).value = mode
    # msqid_ds: ipc_perm (48), stime, rtime, ctime, cbytes, qnum, then qbytes.
    ctypes.c_uint64.from_buffer(buf, 88).value = qbytes
    return buf


def msg_qbytes(qid):
    buf = ctypes.create_string_buffer(256)
    check(libc.msgctl(qid, IPC_STAT, buf))
    return ctypes.c_uint64.from_buffer(buf, 88).value


def run(op, args):
    if op == "fs_read":
        fd = os.open(args[0], os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.read(fd, 1 << 16)
        finally:
            os.close(fd)
    elif op == "fs_write":
        fd = os.open(args[0], os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, args[1].encode())
        finally:
            os.close(fd)
    elif op == "fs_chmod":
        os.chmod(args[0], int(args[1], 8))
    elif op == "fs_chown":
        os.chown(args[0], int(args[1]), int(args[2]))
    elif op == "fs_unlink":
        os.unlink(args[0])
    elif op == "fs_rmdir":
        os.rmdir(args[0])
    elif op == "shm_read":
        addr = check(libc.shmat(int(args[0]), None, SHM_RDONLY))
        libc.shmdt(ctypes.c_void_p(addr))
    elif op == "shm_write":
        addr = check(libc.shmat(int(args[0]), None, 0))
        data = args[1].encode()
        ctypes.memmove(addr, data, len(data))
        libc.shmdt(ctypes.c_void_p(addr))
    elif op == "sem_get":
        check(libc.semctl(int(args[0]), int(args[1]), GETVAL))
    elif op == "sem_setval":
        check(libc.semctl(int(args[0]), int(args[1]), SETVAL, ctypes.c_int(int(args[2]))))
    elif op == "sem_op":
        sembuf = (ctypes.c_short * 3)(int(args[1]), int(args[2]), IPC_NOWAIT)
        check(libc.semop(int(args[0]), sembuf, 1))
    elif op == "msg_send":
        data = args[2].encode()
        buf = ctypes.create_string_buffer(8 + len(data))
        ctypes.c_long.from_buffer(buf, 0).value = int(args[1])
        ctypes.memmove(ctypes.addressof(buf) + 8, data, len(data))
        check(libc.msgsnd(int(args[0]), buf, len(data), IPC_NOWAIT))
    elif op == "msg_recv":
        buf = ctypes.create_string_buffer(8 + 65536)
        check(libc.msgrcv(int(args[0]), buf, 65536, int(args[1]), IPC_NOWAIT))
    elif op.endswith("_set"):
        qid, uid, gid, mode = int(args[0]), int(args[1]), int(args[2]), int(args[3], 8)
        if op == "shm_set":
            check(libc.shmctl(qid, IPC_SET, ipc_set_buffer(uid, gid, mode)))
        elif op == "sem_set":
            check(libc.semctl(qid, 0, IPC_SET, ipc_set_buffer(uid, gid, mode)))
        else:
            # Reading qbytes needs read permission; root's view of it is
            # passed in the environment so the call is IPC_SET alone.
            qbytes = int(os.environ.get("IPCPROBE_QBYTES", "16384"))
            check(libc.msgctl(qid, IPC_SET, ipc_set_buffer(uid, gid, mode, qbytes)))
    elif op.endswith("_rm"):
        qid = int(args[0])
        if op == "shm_rm":
            check(libc.shmctl(qid, IPC_RMID, None))
        elif op == "sem_rm":
            check(libc.semctl(qid, 0, IPC_RMID))
        else:
            check(libc.msgctl(qid, IPC_RMID, None))
    else:
        raise SystemExit(f"ipcprobe: unknown operation {op}")


def main(argv):
    ops, current = [], []
    for arg in argv:
        if arg == ";":
            ops.append(current)
            current = []
        else:
            current.append(arg)
    if current:
        ops.append(current)
    for op in ops:
        try:
            run(op[0], op[1:])
            print("ok")
        except Failed as e:
            print(e.args[0])
        except OSError as e:
            print(errno.errorcode.get(e.errno, str(e.errno)))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
