/*
 * The pod holder: a pause-less pod's only process of its own (see pod/holder.go and
 * docs/design.md, "Pause-less pods"). `go generate ./pod` builds it, freestanding and static,
 * for amd64 and arm64 (holder/gen.sh) into pod/holder_{amd64,arm64}.elf, which package pod
 * embeds and runs from a sealed memfd.
 *
 * The shim starts it as root in the host's namespaces with these fds:
 *   3  its life line: the read end of a pipe whose write end only the shim holds
 *   4  its own image (the memfd it was executed from)
 *   5  the report pipe: it writes "ok\n" once confined, "fail <step> <errno>\n" when a step
 *      fails, and, when it forked into a new PID namespace, "pid <pid>\n" (its child's pid)
 *   6  its configuration, read to EOF: lines "netns", "userns", "unshare <clone flags>",
 *      "hostname <name>", "sysctl <path under /proc/sys> <value>"
 *   7  the pod's network namespace ("netns")
 *   8  the pod's user namespace ("userns")
 * It enters and makes the pod's namespaces (the order matters: see setup), confines itself
 * (an empty read-only root, no capability, uid and gid 65535, not dumpable, no_new_privs, a
 * seccomp filter), reports, and then only waits for its life line to close.
 */
#include <asm/unistd.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/fcntl.h>
#include <linux/filter.h>
#include <linux/mman.h>
#include <linux/mount.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define HOLDER_AUDIT_ARCH AUDIT_ARCH_X86_64
static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
__asm__(".text\n.globl _start\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall holder_main\n\thlt\n");
#elif defined(__aarch64__)
#define HOLDER_AUDIT_ARCH AUDIT_ARCH_AARCH64
static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc #0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
__asm__(".text\n.globl _start\n_start:\n\tmov x0, sp\n\tbl holder_main\n\tbrk #0\n");
#else
#error "the pod holder is written for amd64 and arm64"
#endif

#define sys(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* A freestanding program still gets calls to these from the compiler (struct copies and zeroing). */
void *memset(void *d, int c, unsigned long n)
{
	unsigned char *p = d;

	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

enum {
	FD_LIFELINE = 3,
	FD_IMAGE = 4,
	FD_REPORT = 5,
	FD_CONFIG = 6,
	FD_NETNS = 7,
	FD_USERNS = 8,
	FD_FIRST_STRAY = 9,
	FD_LOOP_END = 1024, /* without close_range (before 5.9): close fds up to here */

	HOLDER_ID = 65535, /* Kubernetes' pause image runs as 65535:65535 */
	CONFIG_MAX = 4096,
	HOSTNAME_MAX = 64,
	CAP_LAST_POSSIBLE = 63,
	MNT_DETACH_FLAG = 2,
	EINTR_ERRNO = 4,
	EPERM_ERRNO = 1,
	EINVAL_ERRNO = 22,
	ENOSYS_ERRNO = 38,
	SIGCHLD_NUM = 17,
};

#ifndef __NR_close_range
#define __NR_close_range 436
#endif

static unsigned long slen(const char *s)
{
	unsigned long n = 0;

	while (s[n])
		n++;
	return n;
}

static int prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

/* put appends s to the report line being built at *at (bounded by end). */
static void put(char **at, char *end, const char *s)
{
	while (*s && *at < end)
		*(*at)++ = *s++;
}

static void put_num(char **at, char *end, unsigned long v)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && *at < end)
		*(*at)++ = digits[--n];
}

/* report writes one line to the shim (one write: atomic on a pipe). */
static void report(const char *word, const char *step, long num, long err)
{
	char line[160], *at = line, *end = line + sizeof(line) - 1;

	put(&at, end, word);
	if (step) {
		put(&at, end, " ");
		put(&at, end, step);
	}
	if (num >= 0) {
		put(&at, end, " ");
		put_num(&at, end, (unsigned long)num);
	}
	if (err >= 0) {
		put(&at, end, " ");
		put_num(&at, end, (unsigned long)err);
	}
	*at++ = '\n';
	sys(__NR_write, FD_REPORT, line, at - line);
}

static __attribute__((noreturn)) void die(const char *step, long index, long ret)
{
	report("fail", step, index, -ret);
	for (;;)
		sys(__NR_exit_group, 1, 0, 0);
}

/* check fails the step unless ret (a system call's result) is not negative. */
static long check(const char *step, long ret)
{
	if (ret < 0)
		die(step, -1, ret);
	return ret;
}

struct config {
	int netns, userns;
	unsigned long unshare;
	const char *hostname;
	const char *sysctl_path[64];
	const char *sysctl_value[64];
	int sysctls;
};

/* read_config reads fd 6 to EOF into buf and parses it into c (lines; fields split at the first
 * spaces, which become NULs). */
static void read_config(char *buf, struct config *c)
{
	long n = 0, r;

	for (;;) {
		r = sys(__NR_read, FD_CONFIG, buf + n, CONFIG_MAX - 1 - n);
		if (r == -EINTR_ERRNO)
			continue;
		check("read its configuration", r);
		if (r == 0)
			break;
		n += r;
		if (n >= CONFIG_MAX - 1)
			die("read its configuration", -1, -EINVAL_ERRNO);
	}
	buf[n] = 0;
	sys(__NR_close, FD_CONFIG, 0, 0);
	for (char *line = buf; *line;) {
		char *next = line;

		while (*next && *next != '\n')
			next++;
		if (*next)
			*next++ = 0;
		if (prefix(line, "netns")) {
			c->netns = 1;
		} else if (prefix(line, "userns")) {
			c->userns = 1;
		} else if (prefix(line, "unshare ")) {
			for (const char *d = line + 8; *d >= '0' && *d <= '9'; d++)
				c->unshare = c->unshare * 10 + (unsigned long)(*d - '0');
		} else if (prefix(line, "hostname ")) {
			c->hostname = line + 9;
		} else if (prefix(line, "sysctl ") && c->sysctls < 64) {
			char *v = line + 7;

			c->sysctl_path[c->sysctls] = v;
			while (*v && *v != ' ')
				v++;
			if (*v)
				*v++ = 0;
			c->sysctl_value[c->sysctls++] = v;
		} else if (*line) {
			die("read its configuration", -1, -EINVAL_ERRNO);
		}
		line = next;
	}
}

/* write_sysctls writes the sysctls whose path starts (net) or does not start (!net) with
 * "net/": each resolves in the namespaces of this process as it opens the file. The shim
 * allows only sysctls of the pod's own namespaces; so does this, in case: net ones with a
 * network namespace entered, the others with an IPC or UTS namespace made. */
static void write_sysctls(const struct config *c, int net)
{
	char path[256];

	for (int i = 0; i < c->sysctls; i++) {
		if (prefix(c->sysctl_path[i], "net/") != net)
			continue;
		if (net ? !c->netns : !(c->unshare & (CLONE_NEWIPC | CLONE_NEWUTS)))
			die("sysctl", i, -EPERM_ERRNO);
		char *at = path, *end = path + sizeof(path) - 1;

		put(&at, end, "/proc/sys/");
		put(&at, end, c->sysctl_path[i]);
		*at = 0;
		long fd = sys(__NR_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);

		if (fd < 0)
			die("sysctl", i, fd);
		long w = sys(__NR_write, fd, c->sysctl_value[i], slen(c->sysctl_value[i]));

		sys(__NR_close, fd, 0, 0);
		if (w < 0)
			die("sysctl", i, w);
	}
}

/* setup enters and makes the pod's namespaces. The network namespace first, and its sysctls,
 * with the shim's credentials (a netns CRI made inside the pod's user namespace is owned by
 * it); then the user namespace; then the namespaces of the pod's own, made inside it so that it
 * owns them (members in that user namespace must be able to mount /proc and mqueue there);
 * then the hostname and the other sysctls. A new PID namespace takes a fork: the child is its
 * PID 1 and the holder, a child of the shim's (CLONE_PARENT); the parent reports its pid and
 * exits. */
static void setup(const struct config *c)
{
	if (c->netns) {
		check("enter the network namespace", sys(__NR_setns, FD_NETNS, CLONE_NEWNET, 0));
		sys(__NR_close, FD_NETNS, 0, 0);
	}
	write_sysctls(c, 1);
	if (c->userns) {
		check("enter the user namespace", sys(__NR_setns, FD_USERNS, CLONE_NEWUSER, 0));
		sys(__NR_close, FD_USERNS, 0, 0);
	}
	check("unshare", sys(__NR_unshare, c->unshare | CLONE_NEWNS, 0, 0));
	if (c->hostname && (c->unshare & CLONE_NEWUTS)) /* never the host's */
		check("sethostname", sys(__NR_sethostname, c->hostname, slen(c->hostname), 0));
	write_sysctls(c, 0);
	if (c->unshare & CLONE_NEWPID) {
		long pid = check("fork into the PID namespace", sys6(__NR_clone, CLONE_PARENT | SIGCHLD_NUM, 0, 0, 0, 0, 0));

		if (pid > 0) {
			report("pid", 0, pid, -1);
			for (;;)
				sys(__NR_exit_group, 0, 0, 0);
		}
	}
}

/* close_all closes every fd but the life line and the report pipe. */
static void close_all(void)
{
	static const int fds[] = {0, 1, 2, FD_IMAGE};

	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		sys(__NR_close, fds[i], 0, 0);
	long r = sys(__NR_close_range, FD_CONFIG, ~0U, 0);

	if (r == -ENOSYS_ERRNO) {
		for (int fd = FD_CONFIG; fd < FD_LOOP_END; fd++)
			sys(__NR_close, fd, 0, 0);
		r = 0;
	}
	check("close its fds", r);
}

/* confine_mounts gives the holder an empty read-only root of its own: its mounts made private,
 * a read-only tmpfs mounted on /proc (in its own mount namespace), pivot_root into it with the
 * old root on top, and the old root detached: nothing of the host's tree is left. */
static void confine_mounts(void)
{
	check("make its mounts private", sys6(__NR_mount, 0, (long)"/", 0, MS_REC | MS_PRIVATE, 0, 0));
	check("mount its root tmpfs", sys6(__NR_mount, (long)"tmpfs", (long)"/proc", (long)"tmpfs",
					  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, (long)"mode=555", 0));
	check("chdir into it", sys(__NR_chdir, "/proc", 0, 0));
	check("pivot_root", sys(__NR_pivot_root, ".", ".", 0));
	check("unmount the old root", sys(__NR_umount2, ".", MNT_DETACH_FLAG, 0));
	check("chdir /", sys(__NR_chdir, "/", 0, 0));
}

/* confine_creds drops every privilege: the bounding set, the ambient set, groups, gid and uid
 * 65535 (the permitted and effective sets go empty), the inheritable set; not dumpable,
 * no_new_privs. */
static void confine_creds(int userns)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
	long r;

	for (long cap = 0; cap <= CAP_LAST_POSSIBLE; cap++) {
		r = sys(__NR_prctl, PR_CAPBSET_DROP, cap, 0);
		if (r == -EINVAL_ERRNO)
			break; /* past the kernel's last capability */
		check("drop the bounding set", r);
	}
	r = sys6(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0);
	if (r != -EINVAL_ERRNO) /* before 4.3: no ambient set */
		check("clear the ambient set", r);
	r = sys(__NR_setgroups, 0, 0, 0);
	if (!(userns && r == -EPERM_ERRNO)) /* a user namespace whose setgroups is "deny" */
		check("setgroups", r);
	check("setresgid", sys(__NR_setresgid, HOLDER_ID, HOLDER_ID, HOLDER_ID));
	check("setresuid", sys(__NR_setresuid, HOLDER_ID, HOLDER_ID, HOLDER_ID));
	check("capset", sys(__NR_capset, &hdr, data, 0));
	check("make itself not dumpable", sys(__NR_prctl, PR_SET_DUMPABLE, 0, 0));
	check("set no_new_privs", sys6(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0));
}

/* The seccomp filter: kill the process on any system call but the five the holder makes once it
 * is confined (read of its life line, write and close of its report, exit), or on another ABI. */
static const struct sock_filter filter[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4 /* seccomp_data.arch */),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, HOLDER_AUDIT_ARCH, 0, 6),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0 /* seccomp_data.nr */),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_read, 5, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 4, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close, 3, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 2, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 1, 0),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

void holder_main(long *sp)
{
	/* rt_sigaction(SIGCHLD, SIG_IGN): as PID 1 of a pod's PID namespace the kernel reaps its
	 * orphans. The kernel's struct sigaction: handler, flags, restorer, mask. */
	unsigned long act[4] = {1 /* SIG_IGN */, 0, 0, 0};
	int userns;
	char byte;

	(void)sp;
	check("ignore SIGCHLD", sys6(__NR_rt_sigaction, SIGCHLD_NUM, (long)act, 0, 8, 0, 0));
	check("set its name", sys(__NR_prctl, PR_SET_NAME, "pod-holder", 0));
	{
		/* The configuration lives in pages of its own, given back once it is applied: the holder
		 * idles on a page or two of stack. */
		unsigned long size = CONFIG_MAX + sizeof(struct config);
		char *buf = (char *)check("map its configuration", sys6(__NR_mmap, 0, (long)size, PROT_READ | PROT_WRITE,
									 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
		struct config *c = (struct config *)(buf + CONFIG_MAX);

		read_config(buf, c);
		setup(c);
		userns = c->userns;
		sys(__NR_munmap, buf, size, 0);
	}
	close_all();
	confine_mounts();
	confine_creds(userns);
	struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), (struct sock_filter *)filter};

	check("install its seccomp filter", sys(__NR_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog));
	report("ok", 0, -1, -1);
	sys(__NR_close, FD_REPORT, 0, 0);
	for (;;) { /* until EOF (or an error but EINTR): a byte is not the shim's close */
		long r = sys(__NR_read, FD_LIFELINE, &byte, 1);

		if (r == 0 || (r < 0 && r != -EINTR_ERRNO))
			break;
	}
	for (;;)
		sys(__NR_exit_group, 0, 0, 0);
}
