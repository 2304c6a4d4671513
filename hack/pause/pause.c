/*
 * pause: the entrypoint of the test pause image, built like Kubernetes' own pause (a tiny static
 * C program, `gcc -Os -static`), so that pods on the pause path cost here what they cost on a
 * node. As PID 1 of a pod's PID namespace it reaps the children re-parented to it, and it exits
 * 0 on SIGINT or SIGTERM (the signals the CRI plugin stops a sandbox with).
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void on(int sig, void (*fn)(int))
{
	struct sigaction sa = {.sa_handler = fn};

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
	if (sigaction(sig, &sa, NULL) != 0)
		_exit(2);
}

int main(void)
{
	on(SIGINT, stop);
	on(SIGTERM, stop);
	on(SIGCHLD, reap);
	for (;;)
		pause();
}
