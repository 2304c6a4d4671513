/* The pod holder for linux/arm64: the same steps as amd64.s, in the same order (see there and
 * pod/holder.go); `go generate ./pod` turns this into pod/holder_arm64.elf.
 *
 * Linux arm64 system calls: number in x8, arguments in x0..x4, svc #0; the result, or -errno,
 * in x0; other registers are preserved. x19 holds the step being taken. sp stays 16-byte
 * aligned (Linux checks the stack's alignment at EL0). */
	.include "common.inc"

	.equ SYS_umount2, 39
	.equ SYS_mount, 40
	.equ SYS_pivot_root, 41
	.equ SYS_chdir, 49
	.equ SYS_close, 57
	.equ SYS_read, 63
	.equ SYS_write, 64
	.equ SYS_capset, 91
	.equ SYS_exit, 93
	.equ SYS_exit_group, 94
	.equ SYS_rt_sigaction, 134
	.equ SYS_setresuid, 147
	.equ SYS_setresgid, 149
	.equ SYS_setgroups, 159
	.equ SYS_prctl, 167
	.equ SYS_close_range, 436
	.equ AUDIT_ARCH_AARCH64, 0xc00000b7

	.macro step n
	mov x19, #\n
	.endm
	.macro sys nr
	mov x8, #\nr
	svc #0
	tbnz x0, #63, fail
	.endm

	.text
	.globl _start
_start:
	step STEP_SIGCHLD	/* rt_sigaction(SIGCHLD, {SIG_IGN}, NULL, 8) */
	sub sp, sp, #32
	mov x0, #1
	stp x0, xzr, [sp]	/* sa_handler = SIG_IGN, sa_flags = 0 */
	stp xzr, xzr, [sp, #16]	/* sa_restorer, sa_mask */
	mov x0, #SIGCHLD
	mov x1, sp
	mov x2, #0
	mov x3, #8
	sys SYS_rt_sigaction
	add sp, sp, #32

	step STEP_NAME
	mov x0, #PR_SET_NAME
	adr x1, name
	sys SYS_prctl

	step STEP_CLOSE
	.irp fd, 0, 1, 2, FD_IMAGE
	mov x0, #\fd
	sys SYS_close
	.endr
	mov x0, #FD_REPORT + 1	/* close_range(6, ~0U, 0) */
	mov x1, #0xffffffff
	mov x2, #0
	mov x8, #SYS_close_range
	svc #0
	cmn x0, #ENOSYS
	b.ne 5f
	mov x20, #FD_REPORT + 1	/* before 5.9: close(fd) for each fd up to FD_LOOP_END */
4:	mov x0, x20
	mov x8, #SYS_close
	svc #0
	add x20, x20, #1
	cmp x20, #FD_LOOP_END
	b.lo 4b
	mov x0, #0
5:	tbnz x0, #63, fail

	step STEP_PRIVATE
	mov x0, #0
	adr x1, slash
	mov x2, #0
	ldr x3, =MS_REC | MS_PRIVATE
	mov x4, #0
	sys SYS_mount

	step STEP_TMPFS
	adr x0, tmpfs
	adr x1, proc
	mov x2, x0
	mov x3, #MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
	adr x4, tmpfs_data
	sys SYS_mount

	step STEP_CHDIR
	adr x0, proc
	sys SYS_chdir

	step STEP_PIVOT
	adr x0, dot
	mov x1, x0
	sys SYS_pivot_root

	step STEP_UMOUNT
	adr x0, dot
	mov x1, #MNT_DETACH
	sys SYS_umount2

	step STEP_CHDIR_ROOT
	adr x0, slash
	sys SYS_chdir

	step STEP_BOUNDING
	mov x20, #0
1:	mov x0, #PR_CAPBSET_DROP
	mov x1, x20
	mov x8, #SYS_prctl
	svc #0
	cmn x0, #EINVAL
	b.eq 2f
	tbnz x0, #63, fail
	add x20, x20, #1
	cmp x20, #CAP_LAST_POSSIBLE
	b.ls 1b
2:
	step STEP_AMBIENT
	mov x0, #PR_CAP_AMBIENT
	mov x1, #PR_CAP_AMBIENT_CLEAR_ALL
	mov x2, #0
	mov x3, #0
	mov x4, #0
	mov x8, #SYS_prctl
	svc #0
	cmn x0, #EINVAL
	b.eq 3f
	tbnz x0, #63, fail
3:
	step STEP_GROUPS
	mov x0, #0
	mov x1, #0
	sys SYS_setgroups

	step STEP_GID
	mov x0, #HOLDER_ID
	mov x1, x0
	mov x2, x0
	sys SYS_setresgid

	step STEP_UID
	mov x0, #HOLDER_ID
	mov x1, x0
	mov x2, x0
	sys SYS_setresuid

	step STEP_CAPS		/* header {v3, 0} at sp, data (24 bytes of zeros) at sp + 8 */
	sub sp, sp, #32
	stp xzr, xzr, [sp]
	stp xzr, xzr, [sp, #16]
	ldr w0, =LINUX_CAPABILITY_VERSION_3
	str w0, [sp]
	mov x0, sp
	add x1, sp, #8
	sys SYS_capset
	add sp, sp, #32

	step STEP_DUMPABLE
	mov x0, #PR_SET_DUMPABLE
	mov x1, #0
	sys SYS_prctl

	step STEP_NNP
	mov x0, #PR_SET_NO_NEW_PRIVS
	mov x1, #1
	mov x2, #0
	mov x3, #0
	mov x4, #0
	sys SYS_prctl

	step STEP_SECCOMP	/* struct sock_fprog {len, filter} on the stack */
	sub sp, sp, #16
	mov x0, #SECCOMP_FILTER_LEN
	adr x1, filter
	stp x0, x1, [sp]
	mov x0, #PR_SET_SECCOMP
	mov x1, #SECCOMP_MODE_FILTER
	mov x2, sp
	sys SYS_prctl
	add sp, sp, #16

	step STEP_READY
	sub sp, sp, #16
	stp xzr, xzr, [sp]
	mov x0, #FD_REPORT
	mov x1, sp
	mov x2, #2
	sys SYS_write
	mov x0, #FD_REPORT
	sys SYS_close

wait:
	mov x0, #FD_LIFELINE
	mov x1, sp
	mov x2, #1
	mov x8, #SYS_read
	svc #0
	cmn x0, #EINTR
	b.eq wait
	cmp x0, #0
	b.gt wait		/* a byte: not the shim's close */
	mov x0, #0
	mov x8, #SYS_exit_group
	svc #0

fail:				/* write(5, {step, errno}, 2); exit_group(1) */
	neg x0, x0
	lsl x0, x0, #8
	orr x0, x0, x19
	sub sp, sp, #16
	str x0, [sp]
	mov x0, #FD_REPORT
	mov x1, sp
	mov x2, #2
	mov x8, #SYS_write
	svc #0
	mov x0, #1
	mov x8, #SYS_exit_group
	svc #0

	.ltorg
	.balign 8
filter:
	seccomp_filter AUDIT_ARCH_AARCH64, SYS_read, SYS_write, SYS_close, SYS_exit, SYS_exit_group
name:	.asciz "pod-holder"
slash:	.asciz "/"
dot:	.asciz "."
proc:	.asciz "/proc"
tmpfs:	.asciz "tmpfs"
tmpfs_data: .asciz "mode=555"

	.section .note.GNU-stack, "", %progbits
