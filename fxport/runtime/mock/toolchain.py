"""Data files for the stand-in sfpi compiler (`stand_in_gxx.sh`): its version line and the ELF
it writes for every link.

TT-Metal JIT-compiles firmware and kernels with the sfpi RISC-V toolchain, which no package
registry ships. A mock device never runs a kernel, so the build only has to succeed with files
the loader accepts. The stand-in is a POSIX sh script (it runs for every compile and link step;
a Python interpreter would add ~30 ms to each); what needs computing is done here, once, when
the runtime root is built.
"""

import struct

# GCC version of the sfpi release, measured from the real compiler (sfpi 7.89.0, ttnn 0.81.1);
# the sfpi version and build number are read from the ttnn package, so they follow an upgrade.
GCC_VERSION = "15.1.0"


def read_sfpi_version(text: str) -> tuple[str, str]:
    """(version, build) from the shell-style `ttnn/tt_metal/sfpi-version` file."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values["sfpi_version"], values["sfpi_build"]


def version_line(sfpi_version_text: str) -> str:
    """First line of `riscv-tt-elf-g++ --version`. It must match the real compiler exactly:
    TT-Metal hashes it into the firmware build key, and the matching key selects the firmware
    that the wheel ships pre-compiled (so no firmware is built by the stand-in)."""
    version, build = read_sfpi_version(sfpi_version_text)
    return f"riscv-tt-elf-g++ (tenstorrent/sfpi:{version}[{build}]) {GCC_VERSION}"


# ELF constants (elf.h)
ET_EXEC, EM_RISCV, EV_CURRENT, PT_LOAD, PF_R_X = 2, 243, 1, 1, 0x5
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 1, 2, 3, 4
SHF_ALLOC, SHF_EXECINSTR, SHF_INFO_LINK = 0x2, 0x4, 0x40
STB_GLOBAL, STT_FUNC = 1, 2
EHDR_SIZE, PHDR_SIZE, SHDR_SIZE, SYM_SIZE, RELA_SIZE = 52, 32, 40, 16, 12
TEXT = struct.pack("<I", 0x00008067)  # `ret`: never executed, keeps .text non-empty
SECTION_NAMES = (".text", ".rela.text", ".symtab", ".strtab", ".shstrtab")  # indexes 1..5


def _align4(n: int) -> int:
    return (n + 3) & ~3


def minimal_riscv_elf(entry: int = 0) -> bytes:
    """A minimal ELF32 little-endian RISC-V executable that TT-Metal's ELF loader accepts.

    What the loader checks: ET_EXEC, EM_RISCV; the first PT_LOAD segment is text and starts at
    the entry point; allocatable sections lie inside a segment; allocatable, relocation and
    symbol sections are 4-byte aligned; and a relocation section exists, because kernels are
    made execute-in-place from their relocations ("there are no relocation sections" otherwise).
    """
    shstrtab = b"\0" + b"\0".join(n.encode() for n in SECTION_NAMES) + b"\0"
    name = {n: shstrtab.index(b"\0" + n.encode() + b"\0") + 1 for n in SECTION_NAMES}
    strtab = b"\0_start\0"
    symtab = bytes(SYM_SIZE) + struct.pack(  # null symbol, then global function _start in .text
        "<IIIBBH", 1, entry, 0, (STB_GLOBAL << 4) | STT_FUNC, 0, 1
    )

    text_off = EHDR_SIZE + PHDR_SIZE
    symtab_off = _align4(text_off + len(TEXT))
    strtab_off = symtab_off + len(symtab)
    shstrtab_off = strtab_off + len(strtab)
    shoff = _align4(shstrtab_off + len(shstrtab))

    def shdr(section, typ, flags, addr, off, size, link=0, info=0, align=1, entsize=0):
        return struct.pack("<10I", name[section], typ, flags, addr, off, size, link, info, align, entsize)

    section_headers = b"".join(
        [
            bytes(SHDR_SIZE),
            shdr(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, entry, text_off, len(TEXT), align=4),
            shdr(".rela.text", SHT_RELA, SHF_INFO_LINK, 0, symtab_off, 0, link=3, info=1, align=4, entsize=RELA_SIZE),
            shdr(".symtab", SHT_SYMTAB, 0, 0, symtab_off, len(symtab), link=4, info=1, align=4, entsize=SYM_SIZE),
            shdr(".strtab", SHT_STRTAB, 0, 0, strtab_off, len(strtab)),
            shdr(".shstrtab", SHT_STRTAB, 0, 0, shstrtab_off, len(shstrtab)),
        ]
    )
    ident = b"\x7fELF" + bytes([1, 1, EV_CURRENT]) + bytes(9)  # ELFCLASS32, ELFDATA2LSB
    ehdr = ident + struct.pack(
        "<HHIIIIIHHHHHH",
        ET_EXEC,
        EM_RISCV,
        EV_CURRENT,
        entry,
        EHDR_SIZE,
        shoff,
        0,
        EHDR_SIZE,
        PHDR_SIZE,
        1,
        SHDR_SIZE,
        1 + len(SECTION_NAMES),
        len(SECTION_NAMES),
    )
    phdr = struct.pack("<8I", PT_LOAD, text_off, entry, entry, len(TEXT), len(TEXT), PF_R_X, 4)

    image = bytearray(ehdr + phdr + TEXT)
    for off, blob in ((symtab_off, symtab), (strtab_off, strtab), (shstrtab_off, shstrtab), (shoff, section_headers)):
        image += bytes(off - len(image)) + blob
    return bytes(image)
