/* ipcbench: timing loops for benches/run.sh (compiled there with gcc -O2).
 *
 * Every timing command runs its operation N times after N/10 unmeasured
 * warm-up runs and prints one number: nanoseconds per operation (or bytes per
 * second for the bulk commands). The System V calls are the raw yardsticks;
 * the file commands work on any path (ipcfs, the null filesystem, tmpfs).
 *
 *   ipcbench stat PATH N              stat(2) of a path
 *   ipcbench fstat PATH N             fstat(2) of a file opened once
 *   ipcbench openclose PATH N         open(O_RDONLY) + close
 *   ipcbench pread PATH N SIZE        pread(SIZE bytes at offset 0) on a file opened once
 *   ipcbench semv PATH N SEMID        write "+1" on a file opened once (a V); every
 *                                     10000 writes semctl(SETVAL 0) when SEMID >= 0
 *   ipcbench sendrecv PATH N SIZE     write SIZE bytes, then read (8 KiB buffer), on a
 *                                     file opened O_RDWR once (a message sent and received)
 *   ipcbench shmstat ID N             shmctl(IPC_STAT)
 *   ipcbench semop ID N               semop(+1), resetting like semv
 *   ipcbench msg ID N SIZE            msgsnd(SIZE bytes) + msgrcv
 *   ipcbench readfile PATH BUF PASSES prints bytes/s of each pass of preads of BUF bytes
 *                                     over the whole file, on one open file
 *   ipcbench par BUF PATH...          one process per PATH reads it whole with BUF-byte
 *                                     preads, all at once; prints total bytes/s
 *   ipcbench mapcopy TARGET SIZE      memcpy of SIZE bytes into and out of a MAP_SHARED
 *                                     mapping of TARGET: a path (opened O_RDWR, mmap) or
 *                                     shm:ID (shmat). Twice, each on a new mapping: into
 *                                     it then out of it, then out then in. Prints bytes/s
 *                                     of: into a fresh mapping, out of a fresh mapping
 *                                     (page faults included), into a mapped one, out of a
 *                                     mapped one (the median of 3 copies each: nothing but
 *                                     memory bandwidth), then the page faults of the copies
 *                                     into and out of a fresh mapping; checks the bytes
 *                                     that come back
 *   ipcbench hold ID                  attaches segment ID, prints the path of its shmem
 *                                     file (/proc/PID/map_files/START-END: the segment's
 *                                     pages without FUSE), holds it until stdin is closed
 *   ipcbench mk shm|sem|msg COUNT [SIZE]  creates COUNT IPC_PRIVATE objects (segments of
 *                                     SIZE bytes, default 4096; sets of 1); prints the last id
 *   ipcbench rm shm|sem|msg ID        IPC_RMID
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int open_or_die(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) die(path);
    return fd;
}

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

static void sem_reset(int semid) {
    union semun arg = {.val = 0};
    if (semid >= 0 && semctl(semid, 0, SETVAL, arg) < 0) die("semctl SETVAL");
}

struct msgbuf64 {
    long mtype;
    char mtext[65536];
};

/* One operation of kind `op` on the state set up by main; returns nothing,
 * dies on error. */
enum op { STAT, FSTAT, OPENCLOSE, PREAD, SEMV, SENDRECV, SHMSTAT, SEMOP, MSG };

struct state {
    enum op op;
    const char *path;
    int fd, id;
    size_t size;
    long i;
    char buf[8192];
    struct msgbuf64 msg;
};

static void one(struct state *s) {
    struct stat st;
    switch (s->op) {
    case STAT:
        if (stat(s->path, &st) < 0) die("stat");
        break;
    case FSTAT:
        if (fstat(s->fd, &st) < 0) die("fstat");
        break;
    case OPENCLOSE: {
        int fd = open_or_die(s->path, O_RDONLY);
        close(fd);
        break;
    }
    case PREAD:
        if (pread(s->fd, s->buf, s->size, 0) != (ssize_t)s->size) die("pread");
        break;
    case SEMV:
        if (++s->i % 10000 == 0) sem_reset(s->id);
        if (write(s->fd, "+1", 2) != 2) die("write +1");
        break;
    case SENDRECV:
        if (write(s->fd, s->buf, s->size) != (ssize_t)s->size) die("write message");
        if (read(s->fd, s->buf, sizeof s->buf) <= 0) die("read message");
        break;
    case SHMSTAT: {
        struct shmid_ds ds;
        if (shmctl(s->id, IPC_STAT, &ds) < 0) die("shmctl IPC_STAT");
        break;
    }
    case SEMOP: {
        struct sembuf op = {.sem_num = 0, .sem_op = 1, .sem_flg = 0};
        if (++s->i % 10000 == 0) sem_reset(s->id);
        if (semop(s->id, &op, 1) < 0) die("semop");
        break;
    }
    case MSG:
        s->msg.mtype = 1;
        if (msgsnd(s->id, &s->msg, s->size, 0) < 0) die("msgsnd");
        if (msgrcv(s->id, &s->msg, sizeof s->msg.mtext, 0, IPC_NOWAIT) != (ssize_t)s->size) die("msgrcv");
        break;
    }
}

static void timed(struct state *s, long n) {
    for (long i = 0; i < n / 10; i++) one(s);
    double t0 = now();
    for (long i = 0; i < n; i++) one(s);
    double t1 = now();
    printf("%.1f\n", (t1 - t0) * 1e9 / n);
}

static off_t file_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) die("fstat");
    return st.st_size;
}

/* Reads the whole file with preads of `buf` bytes; returns bytes read. */
static long long read_all(int fd, char *mem, size_t buf, off_t size) {
    long long total = 0;
    for (off_t off = 0; off < size;) {
        ssize_t r = pread(fd, mem, buf, off);
        if (r < 0) die("pread");
        if (r == 0) break;
        off += r;
        total += r;
    }
    return total;
}

/* A MAP_SHARED mapping of `size` bytes of `target`: shm:ID is shmat, else a
 * path opened O_RDWR and mmapped. */
static char *map_target(const char *target, size_t size) {
    void *p;
    if (!strncmp(target, "shm:", 4)) {
        p = shmat(atoi(target + 4), 0, 0);
        if (p == (void *)-1) die("shmat");
    } else {
        int fd = open_or_die(target, O_RDWR);
        p = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) die("mmap MAP_SHARED");
        close(fd);
    }
    return p;
}

static void unmap_target(const char *target, char *p, size_t size) {
    if (!strncmp(target, "shm:", 4) ? shmdt(p) : munmap(p, size)) die("unmapping");
}

static long faults(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) die("getrusage");
    return ru.ru_minflt + ru.ru_majflt;
}

/* Seconds of memcpy(dst, src, size), and in *faulted the page faults it took;
 * the barrier keeps the copy from being thought dead. */
static double timed_copy(char *dst, const char *src, size_t size, long *faulted) {
    long f0 = faults();
    double t0 = now();
    memcpy(dst, src, size);
    __asm__ __volatile__("" : : "r"(dst) : "memory");
    double t = now() - t0;
    *faulted = faults() - f0;
    return t;
}

/* The median of three timed copies on a populated mapping. */
static double timed_copy3(char *dst, const char *src, size_t size, long *faulted) {
    double a = timed_copy(dst, src, size, faulted), b = timed_copy(dst, src, size, faulted),
           c = timed_copy(dst, src, size, faulted);
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

static int ipc_type(const char *t) {
    if (!strcmp(t, "shm")) return 0;
    if (!strcmp(t, "sem")) return 1;
    if (!strcmp(t, "msg")) return 2;
    fprintf(stderr, "ipcbench: unknown type %s\n", t);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: see the comment at the top of benches/ipcbench.c\n");
        return 2;
    }
    const char *cmd = argv[1];
    static struct state s;
    memset(s.msg.mtext, 'm', sizeof s.msg.mtext);
    memset(s.buf, 'm', sizeof s.buf);
    s.fd = -1;
    s.id = -1;

    if (!strcmp(cmd, "mk") && argc >= 4) {
        int type = ipc_type(argv[2]);
        long count = atol(argv[3]);
        size_t size = argc >= 5 ? strtoull(argv[4], 0, 0) : 4096;
        int id = -1;
        for (long i = 0; i < count; i++) {
            if (type == 0) id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
            else if (type == 1) id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
            else id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
            if (id < 0) die("creating an IPC object");
        }
        printf("%d\n", id);
        return 0;
    }
    if (!strcmp(cmd, "rm") && argc >= 4) {
        int type = ipc_type(argv[2]), id = atoi(argv[3]), r;
        if (type == 0) r = shmctl(id, IPC_RMID, 0);
        else if (type == 1) r = semctl(id, 0, IPC_RMID);
        else r = msgctl(id, IPC_RMID, 0);
        if (r < 0) die("IPC_RMID");
        return 0;
    }
    if (!strcmp(cmd, "readfile") && argc >= 5) {
        size_t buf = strtoull(argv[3], 0, 0);
        int passes = atoi(argv[4]);
        char *mem = aligned_alloc(4096, buf);
        int fd = open_or_die(argv[2], O_RDONLY);
        off_t size = file_size(fd);
        for (int p = 0; p < passes; p++) {
            double t0 = now();
            long long n = read_all(fd, mem, buf, size);
            printf("%s%.0f", p ? " " : "", n / (now() - t0));
        }
        printf("\n");
        return 0;
    }
    if (!strcmp(cmd, "mapcopy") && argc >= 4) {
        const char *target = argv[2];
        size_t size = strtoull(argv[3], 0, 0);
        char *src = aligned_alloc(4096, size), *dst = aligned_alloc(4096, size);
        if (!src || !dst) die("aligned_alloc");
        double t[4] = {0};
        long f[4] = {0};
        for (int pass = 0; pass < 2; pass++) {
            memset(src, 'a' + pass, size); /* touched: no fault in what is timed */
            memset(dst, 0, size);
            char *m = map_target(target, size);
            if (pass == 0) {
                t[0] = timed_copy(m, src, size, &f[0]); /* into, fresh */
                t[3] = timed_copy3(dst, m, size, &f[3]); /* out of, mapped */
            } else {
                t[1] = timed_copy(dst, m, size, &f[1]); /* out of, fresh: the previous pass's bytes */
                if (dst[0] != 'a' || dst[size - 1] != 'a') {
                    fprintf(stderr, "ipcbench: %s did not keep what was copied into it\n", target);
                    return 1;
                }
                t[2] = timed_copy3(m, src, size, &f[2]); /* into, mapped */
                memcpy(dst, m, size);
            }
            if (memcmp(dst, src, size)) {
                fprintf(stderr, "ipcbench: %s gave back other bytes than were copied into it\n", target);
                return 1;
            }
            unmap_target(target, m, size);
        }
        printf("%.0f %.0f %.0f %.0f %ld %ld\n", size / t[0], size / t[1], size / t[2], size / t[3], f[0], f[1]);
        return 0;
    }
    if (!strcmp(cmd, "hold")) {
        int id = atoi(argv[2]);
        struct shmid_ds ds;
        if (shmctl(id, IPC_STAT, &ds) < 0) die("shmctl IPC_STAT");
        char *p = shmat(id, 0, SHM_RDONLY);
        if (p == (void *)-1) die("shmat");
        long page = sysconf(_SC_PAGESIZE);
        unsigned long end = (unsigned long)p + (ds.shm_segsz + page - 1) / page * page;
        printf("/proc/%d/map_files/%lx-%lx\n", (int)getpid(), (unsigned long)p, end);
        fflush(stdout);
        char c;
        while (read(0, &c, 1) > 0) {}
        shmdt(p);
        return 0;
    }
    if (!strcmp(cmd, "par") && argc >= 4) {
        size_t buf = strtoull(argv[2], 0, 0);
        int n = argc - 3;
        long long total = 0;
        int fds[64];
        if (n > 64) return 2;
        for (int i = 0; i < n; i++) {
            fds[i] = open_or_die(argv[3 + i], O_RDONLY);
            total += file_size(fds[i]);
        }
        double t0 = now();
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid < 0) die("fork");
            if (pid == 0) {
                char *mem = aligned_alloc(4096, buf);
                read_all(fds[i], mem, buf, file_size(fds[i]));
                _exit(0);
            }
        }
        int status, failed = 0;
        while (wait(&status) > 0) failed |= !WIFEXITED(status) || WEXITSTATUS(status);
        double t1 = now();
        if (failed) return 1;
        printf("%.0f\n", total / (t1 - t0));
        return 0;
    }

    if (argc < 4) return 2;
    long n = atol(argv[3]);
    const char *target = argv[2];
    s.path = target;
    if (!strcmp(cmd, "stat")) s.op = STAT;
    else if (!strcmp(cmd, "fstat")) s.op = FSTAT, s.fd = open_or_die(target, O_RDONLY);
    else if (!strcmp(cmd, "openclose")) s.op = OPENCLOSE;
    else if (!strcmp(cmd, "pread") && argc >= 5) {
        s.op = PREAD, s.fd = open_or_die(target, O_RDONLY), s.size = strtoull(argv[4], 0, 0);
        if (s.size > sizeof s.buf) return 2;
    } else if (!strcmp(cmd, "semv") && argc >= 5) {
        s.op = SEMV, s.fd = open_or_die(target, O_WRONLY), s.id = atoi(argv[4]);
        sem_reset(s.id);
    } else if (!strcmp(cmd, "sendrecv") && argc >= 5) {
        s.op = SENDRECV, s.fd = open_or_die(target, O_RDWR), s.size = strtoull(argv[4], 0, 0);
        if (s.size > sizeof s.buf) return 2;
    } else if (!strcmp(cmd, "shmstat")) s.op = SHMSTAT, s.id = atoi(target);
    else if (!strcmp(cmd, "semop")) {
        s.op = SEMOP, s.id = atoi(target);
        sem_reset(s.id);
    } else if (!strcmp(cmd, "msg") && argc >= 5) {
        s.op = MSG, s.id = atoi(target), s.size = strtoull(argv[4], 0, 0);
        if (s.size > sizeof s.msg.mtext) return 2;
    } else {
        fprintf(stderr, "ipcbench: bad command line\n");
        return 2;
    }
    timed(&s, n);
    return 0;
}
