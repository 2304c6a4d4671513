/* The pod holder for linux/amd64 (see pod/holder.go for what it is and how the shim runs it;
 * `go generate ./pod` turns this into pod/holder_amd64.elf). The shim starts it in the pod's new
 * namespaces (mount, PID, IPC, UTS; the pod's network namespace), as root, with fds 3 (its life
 * line), 4 (its own image) and 5 (the report pipe). It confines itself, reports, and then only
 * waits for its life line to close.
 *
 * Linux x86-64 system calls: number in rax, arguments in rdi, rsi, rdx, r10, r8; syscall
 * clobbers rcx and r11; the result, or -errno, in rax. r12 holds the step being taken. */
	.intel_syntax noprefix
	.include "common.inc"

	.equ SYS_read, 0
	.equ SYS_write, 1
	.equ SYS_close, 3
	.equ SYS_rt_sigaction, 13
	.equ SYS_exit, 60
	.equ SYS_chdir, 80
	.equ SYS_setgroups, 116
	.equ SYS_setresuid, 117
	.equ SYS_setresgid, 119
	.equ SYS_capset, 126
	.equ SYS_pivot_root, 155
	.equ SYS_prctl, 157
	.equ SYS_mount, 165
	.equ SYS_umount2, 166
	.equ SYS_exit_group, 231
	.equ SYS_close_range, 436
	.equ AUDIT_ARCH_X86_64, 0xc000003e

/* step N: the step taken from here on. */
	.macro step n
	mov r12d, \n
	.endm
/* sys NR: the system call; a negative result fails the step. */
	.macro sys nr
	mov eax, \nr
	syscall
	test rax, rax
	js fail
	.endm

	.text
	.globl _start
_start:
	step STEP_SIGCHLD	/* rt_sigaction(SIGCHLD, {SIG_IGN}, NULL, 8): the kernel reaps its orphans */
	xor eax, eax
	push rax		/* sa_mask */
	push rax		/* sa_restorer */
	push rax		/* sa_flags */
	push 1			/* sa_handler = SIG_IGN */
	mov edi, SIGCHLD
	mov rsi, rsp
	xor edx, edx
	mov r10d, 8
	sys SYS_rt_sigaction
	add rsp, 32

	step STEP_NAME		/* prctl(PR_SET_NAME, "pod-holder"): its comm, for ps */
	mov edi, PR_SET_NAME
	lea rsi, [rip + name]
	sys SYS_prctl

	step STEP_CLOSE		/* only fds 3 and 5 stay */
	.irp fd, 0, 1, 2, FD_IMAGE
	mov edi, \fd
	sys SYS_close
	.endr
	mov edi, FD_REPORT + 1	/* close_range(6, ~0U, 0): whatever the shim let through */
	mov esi, -1
	xor edx, edx
	mov eax, SYS_close_range
	syscall
	cmp rax, -ENOSYS
	jne 5f
	mov ebx, FD_REPORT + 1	/* before 5.9: close(fd) for each fd up to FD_LOOP_END */
4:	mov edi, ebx
	mov eax, SYS_close
	syscall
	inc ebx
	cmp ebx, FD_LOOP_END
	jb 4b
	xor eax, eax
5:	test rax, rax
	js fail

	step STEP_PRIVATE	/* mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) */
	xor edi, edi
	lea rsi, [rip + slash]
	xor edx, edx
	mov r10d, MS_REC | MS_PRIVATE
	xor r8d, r8d
	sys SYS_mount

	step STEP_TMPFS		/* mount("tmpfs", "/proc", "tmpfs", ro|nosuid|nodev|noexec, "mode=555") */
	lea rdi, [rip + tmpfs]
	lea rsi, [rip + proc]
	mov rdx, rdi
	mov r10d, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
	lea r8, [rip + tmpfs_data]
	sys SYS_mount

	step STEP_CHDIR
	lea rdi, [rip + proc]
	sys SYS_chdir

	step STEP_PIVOT		/* pivot_root(".", "."): the tmpfs is the root, the old root on top of it */
	lea rdi, [rip + dot]
	mov rsi, rdi
	sys SYS_pivot_root

	step STEP_UMOUNT	/* umount2(".", MNT_DETACH): the old root, and all of the host's tree, go */
	lea rdi, [rip + dot]
	mov esi, MNT_DETACH
	sys SYS_umount2

	step STEP_CHDIR_ROOT
	lea rdi, [rip + slash]
	sys SYS_chdir

	step STEP_BOUNDING	/* prctl(PR_CAPBSET_DROP, cap) for every cap up to the kernel's last */
	xor ebx, ebx
1:	mov edi, PR_CAPBSET_DROP
	mov esi, ebx
	mov eax, SYS_prctl
	syscall
	cmp rax, -EINVAL
	je 2f			/* past the kernel's last capability */
	test rax, rax
	js fail
	inc ebx
	cmp ebx, CAP_LAST_POSSIBLE
	jbe 1b
2:
	step STEP_AMBIENT	/* prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); EINVAL before 4.3 */
	mov edi, PR_CAP_AMBIENT
	mov esi, PR_CAP_AMBIENT_CLEAR_ALL
	xor edx, edx
	xor r10d, r10d
	xor r8d, r8d
	mov eax, SYS_prctl
	syscall
	cmp rax, -EINVAL
	je 3f
	test rax, rax
	js fail
3:
	step STEP_GROUPS	/* setgroups(0, NULL) */
	xor edi, edi
	xor esi, esi
	sys SYS_setgroups

	step STEP_GID
	mov edi, HOLDER_ID
	mov esi, edi
	mov edx, edi
	sys SYS_setresgid

	step STEP_UID
	mov edi, HOLDER_ID
	mov esi, edi
	mov edx, edi
	sys SYS_setresuid

	step STEP_CAPS		/* capset(&{v3, 0}, &{{0, 0, 0}, {0, 0, 0}}) */
	xor eax, eax
	push rax
	push rax
	push rax		/* data: 24 bytes of zeros */
	mov rsi, rsp
	mov ecx, LINUX_CAPABILITY_VERSION_3
	push rcx		/* header: version, pid 0 */
	mov rdi, rsp
	sys SYS_capset
	add rsp, 32

	step STEP_DUMPABLE	/* prctl(PR_SET_DUMPABLE, 0) */
	mov edi, PR_SET_DUMPABLE
	xor esi, esi
	sys SYS_prctl

	step STEP_NNP		/* prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) */
	mov edi, PR_SET_NO_NEW_PRIVS
	mov esi, 1
	xor edx, edx
	xor r10d, r10d
	xor r8d, r8d
	sys SYS_prctl

	step STEP_SECCOMP	/* prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &{len, filter}) */
	lea rax, [rip + filter]
	push rax
	push SECCOMP_FILTER_LEN
	mov edi, PR_SET_SECCOMP
	mov esi, SECCOMP_MODE_FILTER
	mov rdx, rsp
	sys SYS_prctl
	add rsp, 16

	step STEP_READY		/* write(5, {0, 0}, 2); close(5) */
	xor eax, eax
	push rax
	mov edi, FD_REPORT
	mov rsi, rsp
	mov edx, 2
	sys SYS_write
	mov edi, FD_REPORT
	sys SYS_close

wait:				/* read(3, buf, 1) until EOF (or an error but EINTR): then exit_group(0) */
	mov edi, FD_LIFELINE
	mov rsi, rsp
	mov edx, 1
	xor eax, eax		/* SYS_read */
	syscall
	cmp rax, -EINTR
	je wait
	test rax, rax
	jg wait			/* a byte: not the shim's close */
	xor edi, edi
	mov eax, SYS_exit_group
	syscall

fail:				/* write(5, {step, errno}, 2); exit_group(1) */
	neg eax
	shl eax, 8
	or eax, r12d
	push rax
	mov edi, FD_REPORT
	mov rsi, rsp
	mov edx, 2
	mov eax, SYS_write
	syscall
	mov edi, 1
	mov eax, SYS_exit_group
	syscall

	.balign 8
filter:
	seccomp_filter AUDIT_ARCH_X86_64, SYS_read, SYS_write, SYS_close, SYS_exit, SYS_exit_group
name:	.asciz "pod-holder"
slash:	.asciz "/"
dot:	.asciz "."
proc:	.asciz "/proc"
tmpfs:	.asciz "tmpfs"
tmpfs_data: .asciz "mode=555"

	.section .note.GNU-stack, "", @progbits
