/*
 * cst-probe: what the busybox test image lacks for the integration tests' security rows.
 *
 *   cst-probe ptrace PID   PTRACE_ATTACH to PID, wait for its stop, detach; prints "attached",
 *                          or "denied <errno name>" when the kernel refuses (exit 0 either way;
 *                          other failures exit 1).
 *
 * Built static (`gcc -Os -static`) into the busybox test image as /bin/cst-probe.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>

static const char *errname(int e)
{
	switch (e) {
	case EPERM:
		return "EPERM";
	case EACCES:
		return "EACCES";
	case ESRCH:
		return "ESRCH";
	}
	return strerror(e);
}

static int ptrace_probe(pid_t pid)
{
	int status;

	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0) {
		printf("denied %s\n", errname(errno));
		return 0;
	}
	if (waitpid(pid, &status, __WALL) != pid) {
		perror("waitpid");
		return 1;
	}
	if (ptrace(PTRACE_DETACH, pid, NULL, NULL) != 0) {
		perror("ptrace detach");
		return 1;
	}
	printf("attached\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "ptrace") == 0)
		return ptrace_probe((pid_t)atoi(argv[2]));
	fprintf(stderr, "usage: cst-probe ptrace PID\n");
	return 2;
}
