// uml-xstate.so: an LD_PRELOAD for Debian 12's linux.uml (user-mode-linux 6.1) on hosts whose
// XSAVE area is larger than the one that kernel was built for (AVX-512 and AMX: about 11 KiB).
//
// UML saves and restores the FPU state of its guest processes with
// ptrace(PTRACE_GETREGSET/PTRACE_SETREGSET, NT_X86_XSTATE) and a buffer of a size fixed when it
// was built. The host kernel truncates a short GETREGSET, but refuses a SETREGSET of any size but
// its whole XSAVE area with EFAULT, so on such a host the guest's first process dies at once
// ("userspace - ptrace set fp regs failed, errno = 14", then "Attempted to kill init").
//
// This library interposes ptrace() for those two requests: each buffer UML passes (one per guest
// thread, in its registers) gets a shadow of the host's full size. A GETREGSET reads the whole
// area into the shadow and hands UML the part it asked for; a SETREGSET writes UML's part over
// the shadow and sets the whole area. So the state beyond UML's part (AVX-512, AMX) is kept per
// guest thread too, instead of leaking between the threads of a guest process. Every other
// request goes to the C library's ptrace untouched. UML runs its guest on one host thread, so
// the table needs no lock.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define REQ_GETREGSET 0x4204 // PTRACE_GETREGSET
#define REQ_SETREGSET 0x4205 // PTRACE_SETREGSET
#define NOTE_XSTATE 0x202    // NT_X86_XSTATE
#define MAX_XSTATE (64 * 1024)
#define SLOTS 16384 // shadows kept (a power of two); 64 taken slots in a row: the last is reused

struct shadow {
	const void *key; // UML's buffer
	unsigned char *area;
	int filled; // area holds a state read from the host
};

static struct shadow table[SLOTS];
static size_t full; // the host's NT_X86_XSTATE size, learnt from the first GETREGSET

static long sys_ptrace(long req, pid_t pid, void *addr, void *data)
{
	return syscall(SYS_ptrace, req, pid, addr, data);
}

// learn_size reads pid's whole XSAVE area once, to learn its size.
static int learn_size(pid_t pid)
{
	static unsigned char probe[MAX_XSTATE] __attribute__((aligned(64)));
	struct iovec iov = {probe, sizeof(probe)};

	if (full)
		return 0;
	if (sys_ptrace(REQ_GETREGSET, pid, (void *)NOTE_XSTATE, &iov) < 0)
		return -1;
	full = iov.iov_len;
	return 0;
}

static struct shadow *shadow_of(const void *key)
{
	size_t h = ((uintptr_t)key >> 4) * 0x9E3779B97F4A7C15ull;
	size_t i, slot = 0;
	struct shadow *s;

	for (i = 0; i < 64; i++) {
		slot = (h + i) & (SLOTS - 1);
		if (table[slot].key == key || table[slot].key == NULL)
			break;
	}
	s = &table[slot];
	if (s->key != key) {
		s->key = key;
		s->filled = 0;
	}
	if (s->area == NULL && (s->area = aligned_alloc(64, (full + 63) & ~(size_t)63)) == NULL)
		abort();
	return s;
}

static long get_xstate(pid_t pid, struct iovec *iov)
{
	struct shadow *s;
	struct iovec whole;
	size_t n;

	if (learn_size(pid) < 0)
		return -1;
	s = shadow_of(iov->iov_base);
	whole.iov_base = s->area;
	whole.iov_len = full;
	if (sys_ptrace(REQ_GETREGSET, pid, (void *)NOTE_XSTATE, &whole) < 0)
		return -1;
	s->filled = 1;
	n = iov->iov_len < whole.iov_len ? iov->iov_len : whole.iov_len;
	memcpy(iov->iov_base, s->area, n);
	iov->iov_len = n;
	return 0;
}

static long set_xstate(pid_t pid, struct iovec *iov)
{
	struct shadow *s;
	struct iovec whole;

	if (learn_size(pid) < 0)
		return -1;
	if (iov->iov_len >= full)
		return sys_ptrace(REQ_SETREGSET, pid, (void *)NOTE_XSTATE, iov);
	s = shadow_of(iov->iov_base);
	whole.iov_base = s->area;
	whole.iov_len = full;
	// A buffer never read from the host: the rest of the area is the target's current state.
	if (!s->filled && sys_ptrace(REQ_GETREGSET, pid, (void *)NOTE_XSTATE, &whole) < 0)
		return -1;
	s->filled = 1;
	memcpy(s->area, iov->iov_base, iov->iov_len);
	whole.iov_len = full;
	return sys_ptrace(REQ_SETREGSET, pid, (void *)NOTE_XSTATE, &whole);
}

long ptrace(int request, ...)
{
	static long (*libc_ptrace)(int, pid_t, void *, void *);
	va_list ap;
	pid_t pid;
	void *addr, *data;

	va_start(ap, request);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);

	if ((uintptr_t)addr == NOTE_XSTATE && data != NULL) {
		if (request == REQ_GETREGSET)
			return get_xstate(pid, data);
		if (request == REQ_SETREGSET)
			return set_xstate(pid, data);
	}
	if (libc_ptrace == NULL)
		libc_ptrace = (long (*)(int, pid_t, void *, void *))dlsym(RTLD_NEXT, "ptrace");
	return libc_ptrace(request, pid, addr, data);
}
