"""Tiny static ELF executables, one per architecture, for images a real runtime can start.

The amd64 and 386 programs exit 0 (``exit`` syscall); the others (arm64, arm, ppc64le, s390x,
riscv64) carry a valid header for their machine and a few bytes of code, which is all the kernel
reads before it refuses a foreign architecture with ENOEXEC ("exec format error"), as it does on
a node of the wrong architecture.
"""

import struct

# e_machine of each architecture (elf.h), and whether its ELF is big-endian
_MACHINE64 = {"amd64": 62, "arm64": 183, "ppc64le": 21, "s390x": 22, "riscv64": 243}
_MACHINE32 = {"386": 3, "arm": 40}
_CODE = {
    "amd64": bytes.fromhex("b83c00000031ff0f05"),  # mov eax, 60 (exit); xor edi, edi; syscall
    "386": bytes.fromhex("b80100000031dbcd80"),  # mov eax, 1 (exit); xor ebx, ebx; int 0x80
}


def executable(arch):
    """The bytes of a static executable for ``arch`` (OCI spelling), or None for an unknown one."""
    code = _CODE.get(arch, b"\0" * 8)
    if arch in _MACHINE64:
        endian = ">" if arch == "s390x" else "<"
        base, ehsize, phsize = 0x400000, 64, 56
        total = ehsize + phsize + len(code)
        ident = b"\x7fELF" + bytes([2, 2 if endian == ">" else 1, 1, 0]) + b"\0" * 8
        header = ident + struct.pack(endian + "HHIQQQIHHHHHH", 2, _MACHINE64[arch], 1, base + ehsize + phsize,
                                     ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0)
        segment = struct.pack(endian + "IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
        return header + segment + code
    if arch in _MACHINE32:
        base, ehsize, phsize = 0x8048000, 52, 32
        total = ehsize + phsize + len(code)
        flags = 0x5000400 if arch == "arm" else 0  # EABI5, hard float
        ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + b"\0" * 8
        header = ident + struct.pack("<HHIIIIIHHHHHH", 2, _MACHINE32[arch], 1, base + ehsize + phsize, ehsize, 0,
                                     flags, ehsize, phsize, 1, 0, 0, 0)
        segment = struct.pack("<IIIIIIII", 1, 0, base, base, total, total, 5, 0x1000)
        return header + segment + code
    return None
