//go:build linux

package pod

// holderAArch64 is the holder's code for arm64 (Linux syscall ABI: number in x8, arguments in
// x0..x5, svc #0; the result, or -errno, in x0; other registers are preserved). Instructions
// are 32-bit little-endian words; offsets are from the entry point; the name holderComm follows
// the code at 0x60. It is compiled on every arch so that tests can check both images
// (elf_test.go runs it under qemu-aarch64 where that is installed).
var holderAArch64 = withComm(words(
	// rt_sigaction(SIGCHLD, &act, NULL, 8), act = {SIG_IGN, flags 0, restorer 0, mask 0} on the stack
	0xd10083ff, // 00: sub  sp, sp, #32
	0xd2800020, // 04: mov  x0, #1
	0xa9007fe0, // 08: stp  x0, xzr, [sp]        ; sa_handler = SIG_IGN, sa_flags = 0
	0xa9017fff, // 0c: stp  xzr, xzr, [sp, #16]  ; sa_restorer = 0, sa_mask = 0
	0xd2800220, // 10: mov  x0, #17              ; SIGCHLD
	0x910003e1, // 14: mov  x1, sp               ; act
	0xd2800002, // 18: mov  x2, #0               ; oldact = NULL
	0xd2800103, // 1c: mov  x3, #8               ; sizeof(sigset_t)
	0xd28010c8, // 20: mov  x8, #134             ; __NR_rt_sigaction
	0xd4000001, // 24: svc  #0
	// prctl(PR_SET_NAME, name)
	0xd28001e0, // 28: mov  x0, #15              ; PR_SET_NAME
	0x100001a1, // 2c: adr  x1, 0x60             ; name
	0xd28014e8, // 30: mov  x8, #167             ; __NR_prctl
	0xd4000001, // 34: svc  #0
	// loop: read(3, sp, 1); again on -EINTR
	0xd2800060, // 38: mov  x0, #3               ; fd 3: the pipe's read end
	0x910003e1, // 3c: mov  x1, sp               ; buf: the stack
	0xd2800022, // 40: mov  x2, #1               ; count
	0xd28007e8, // 44: mov  x8, #63              ; __NR_read
	0xd4000001, // 48: svc  #0
	0xb100101f, // 4c: cmn  x0, #4               ; x0 == -EINTR?
	0x54ffff40, // 50: b.eq 0x38                 ; read again
	// exit_group(0)
	0xd2800000, // 54: mov  x0, #0               ; status 0
	0xd2800bc8, // 58: mov  x8, #94              ; __NR_exit_group
	0xd4000001, // 5c: svc  #0
	// 60: name
))

// words encodes instructions as little-endian 32-bit words.
func words(ins ...uint32) []byte {
	b := make([]byte, 0, 4*len(ins))
	for _, w := range ins {
		b = append(b, byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	return b
}
