//go:build linux

package pod

import (
	"encoding/binary"
)

// The holder is a static ELF executable the shim builds at run time from a few instructions of
// machine code (elf_x86_64.go, elf_aarch64.go): a pause process without an image, a Go runtime
// or a libc. It
//
//  1. sets SIGCHLD to SIG_IGN, so that as PID 1 of a pod's PID namespace the children it
//     inherits (orphans of the pod) are reaped by the kernel as they exit (wait(2): "POSIX.1-2001
//     specifies that if the disposition of SIGCHLD is set to SIG_IGN ... children that terminate
//     do not become zombies");
//  2. names itself holderComm (prctl PR_SET_NAME), so ps and pgrep show what it is (exec'd as
//     /proc/self/fd/4 its comm would be "4");
//  3. reads one byte from fd 3 until the read returns anything but -EINTR, then exit_group(0).
//     fd 3 is the read end of a pipe whose only write end the shim holds: the read returns 0
//     (EOF) when the shim closes it (Stop) or dies, so no holder outlives its shim.
//
// The image is one PT_LOAD segment (file offset 0 at holderBase, read+execute) holding the ELF
// header, the program headers, the code and the name, plus a PT_GNU_STACK header asking for a
// non-executable stack. The kernel maps one page of it; the stack is the one execve sets up.

// holderComm is the name the holder gives itself (at most 15 bytes: TASK_COMM_LEN - 1).
const holderComm = "pod-holder"

const (
	holderBase = 0x400000 // the segment's virtual address (above vm.mmap_min_addr)

	elfHeaderSize   = 64 // Elf64_Ehdr
	elfPhdrSize     = 56 // Elf64_Phdr
	elfPhdrCount    = 2  // PT_LOAD, PT_GNU_STACK
	elfCodeOffset   = elfHeaderSize + elfPhdrCount*elfPhdrSize
	elfSegmentAlign = 0x10000 // the largest page size of the arches (arm64 with 64 KiB pages)

	emX86_64  = 62  // EM_X86_64
	emAArch64 = 183 // EM_AARCH64

	ptLoad       = 1
	ptGNUStack   = 0x6474e551
	pfX          = 1
	pfW          = 2
	pfR          = 4
	etExec       = 2
	evCurrent    = 1
	elfClass64   = 2
	elfDataLSB   = 1
	elfOSABISysV = 0
)

// buildELF returns the executable for machine (EM_*) whose code starts at the code offset:
// code is the machine code followed by holderComm and its NUL, as the code expects it.
func buildELF(machine uint16, code []byte) []byte {
	size := elfCodeOffset + len(code)
	b := make([]byte, 0, size)
	le := binary.LittleEndian

	// Elf64_Ehdr
	b = append(b, 0x7f, 'E', 'L', 'F', elfClass64, elfDataLSB, evCurrent, elfOSABISysV)
	b = append(b, make([]byte, 8)...)                // EI_ABIVERSION, padding
	b = le.AppendUint16(b, etExec)                   // e_type
	b = le.AppendUint16(b, machine)                  // e_machine
	b = le.AppendUint32(b, evCurrent)                // e_version
	b = le.AppendUint64(b, holderBase+elfCodeOffset) // e_entry
	b = le.AppendUint64(b, elfHeaderSize)            // e_phoff
	b = le.AppendUint64(b, 0)                        // e_shoff: no section headers
	b = le.AppendUint32(b, 0)                        // e_flags
	b = le.AppendUint16(b, elfHeaderSize)            // e_ehsize
	b = le.AppendUint16(b, elfPhdrSize)              // e_phentsize
	b = le.AppendUint16(b, elfPhdrCount)             // e_phnum
	b = le.AppendUint16(b, 0)                        // e_shentsize
	b = le.AppendUint16(b, 0)                        // e_shnum
	b = le.AppendUint16(b, 0)                        // e_shstrndx

	// PT_LOAD: the whole file, read+execute, at holderBase.
	b = appendPhdr(b, ptLoad, pfR|pfX, holderBase, uint64(size), elfSegmentAlign)
	// PT_GNU_STACK: the stack is read+write, not executable.
	b = appendPhdr(b, ptGNUStack, pfR|pfW, 0, 0, 16)

	return append(b, code...)
}

// appendPhdr appends an Elf64_Phdr of a segment at file offset 0 (the only kind the holder has).
func appendPhdr(b []byte, typ, flags uint32, vaddr, size, align uint64) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, typ)   // p_type
	b = le.AppendUint32(b, flags) // p_flags
	b = le.AppendUint64(b, 0)     // p_offset
	b = le.AppendUint64(b, vaddr) // p_vaddr
	b = le.AppendUint64(b, vaddr) // p_paddr
	b = le.AppendUint64(b, size)  // p_filesz
	b = le.AppendUint64(b, size)  // p_memsz
	b = le.AppendUint64(b, align) // p_align
	return b
}

// withComm appends holderComm and its terminating NUL to code.
func withComm(code []byte) []byte {
	out := append([]byte{}, code...)
	out = append(out, holderComm...)
	return append(out, 0)
}
