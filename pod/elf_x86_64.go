//go:build linux

package pod

// holderX86_64 is the holder's code for x86-64 (Linux syscall ABI: number in rax, arguments in
// rdi, rsi, rdx, r10; syscall clobbers rcx and r11; the result, or -errno, in rax). Offsets are
// from the entry point; the name holderComm follows the code at 0x51. It is compiled on every
// arch so that tests can check both images (elf_test.go runs the arm64 one under qemu).
var holderX86_64 = withComm([]byte{
	// rt_sigaction(SIGCHLD, &act, NULL, 8), act = {SIG_IGN, flags 0, restorer 0, mask 0} on the stack
	0x31, 0xc0, // 00: xor    eax, eax
	0x50,       // 02: push   rax                 ; sa_mask = 0
	0x50,       // 03: push   rax                 ; sa_restorer = 0
	0x50,       // 04: push   rax                 ; sa_flags = 0
	0x6a, 0x01, // 05: push   1                   ; sa_handler = SIG_IGN
	0xbf, 0x11, 0x00, 0x00, 0x00, // 07: mov    edi, 17             ; SIGCHLD
	0x48, 0x89, 0xe6, // 0c: mov    rsi, rsp            ; act
	0x31, 0xd2, // 0f: xor    edx, edx            ; oldact = NULL
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // 11: mov    r10d, 8             ; sizeof(sigset_t)
	0xb8, 0x0d, 0x00, 0x00, 0x00, // 17: mov    eax, 13             ; __NR_rt_sigaction
	0x0f, 0x05, // 1c: syscall
	// prctl(PR_SET_NAME, name)
	0xbf, 0x0f, 0x00, 0x00, 0x00, // 1e: mov    edi, 15             ; PR_SET_NAME
	0x48, 0x8d, 0x35, 0x27, 0x00, 0x00, 0x00, // 23: lea    rsi, [rip+0x27]     ; name (0x2a + 0x27 = 0x51)
	0xb8, 0x9d, 0x00, 0x00, 0x00, // 2a: mov    eax, 157            ; __NR_prctl
	0x0f, 0x05, // 2f: syscall
	// loop: read(3, rsp, 1); again on -EINTR
	0xbf, 0x03, 0x00, 0x00, 0x00, // 31: mov    edi, 3              ; fd 3: the pipe's read end
	0x48, 0x89, 0xe6, // 36: mov    rsi, rsp            ; buf: the stack
	0xba, 0x01, 0x00, 0x00, 0x00, // 39: mov    edx, 1              ; count
	0x31, 0xc0, // 3e: xor    eax, eax            ; __NR_read
	0x0f, 0x05, // 40: syscall
	0x48, 0x83, 0xf8, 0xfc, // 42: cmp    rax, -4             ; -EINTR?
	0x74, 0xe9, // 46: je     0x31                ; read again
	// exit_group(0)
	0x31, 0xff, // 48: xor    edi, edi            ; status 0
	0xb8, 0xe7, 0x00, 0x00, 0x00, // 4a: mov    eax, 231            ; __NR_exit_group
	0x0f, 0x05, // 4f: syscall
	// 51: name
})
