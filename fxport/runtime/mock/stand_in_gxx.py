"""Stand-in for the sfpi RISC-V compiler `riscv-tt-elf-g++`, for the mock device only.

TT-Metal JIT-compiles firmware and kernels with the sfpi toolchain, which no package registry
ships. A mock device never runs a kernel, so it only needs the build to succeed with files the
loader accepts. `build_runtime_root` installs this file as
`<root>/runtime/sfpi/compiler/bin/riscv-tt-elf-g++` with an absolute shebang to the current
interpreter. Standard library only: it runs once per compile step, so it must start fast.

Behaviour, per invocation:
- `--version`: the first line must match the real sfpi compiler exactly, because TT-Metal hashes
  it into the firmware build key; the matching key selects the firmware the wheel ships.
- `-x c++-header`: fail, so TT-Metal skips the precompiled header (it only warns).
- `-c`: an empty object at `-o`, and a make-style dependency file at `-MF`.
- anything else with `-o` is a link: a minimal RISC-V executable the TT-Metal ELF loader accepts.
"""

import os
import struct
import sys

# GCC version of the sfpi release, measured from the real compiler (sfpi 7.89.0); the sfpi
# version and build number are read from the ttnn package so they follow a ttnn upgrade.
GCC_VERSION = "15.1.0"
SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".S", ".s")


def read_sfpi_version(text):
    """(version, build) from the shell-style `ttnn/tt_metal/sfpi-version` file."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values["sfpi_version"], values["sfpi_build"]


def version_line(sfpi_version_text):
    version, build = read_sfpi_version(sfpi_version_text)
    return f"riscv-tt-elf-g++ (tenstorrent/sfpi:{version}[{build}]) {GCC_VERSION}"


def _sfpi_version_path():
    # Installed at <root>/runtime/sfpi/compiler/bin/; the root links tt_metal/ to the ttnn package.
    root = os.path.dirname(os.path.abspath(__file__))
    for _ in range(4):
        root = os.path.dirname(root)
    return os.path.join(root, "tt_metal", "sfpi-version")


# ELF constants (elf.h)
ET_EXEC, EM_RISCV, EV_CURRENT, PT_LOAD = 2, 243, 1, 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 1, 2, 3, 4
SHF_ALLOC, SHF_EXECINSTR, SHF_INFO_LINK = 0x2, 0x4, 0x40
STB_GLOBAL, STT_FUNC = 1, 2
EHDR_SIZE, PHDR_SIZE, SHDR_SIZE, SYM_SIZE, RELA_SIZE = 52, 32, 40, 16, 12
TEXT = struct.pack("<I", 0x00008067)  # `ret`: never executed, but keeps .text non-empty


def _align4(n):
    return (n + 3) & ~3


def minimal_riscv_elf(entry=0):
    """A minimal ELF32 little-endian RISC-V executable that TT-Metal's ELF loader accepts.

    One PT_LOAD segment starting at the entry point (the loader requires the first loadable
    segment to be text, starting at the entry); .text inside it; an empty .rela.text (kernels are
    made execute-in-place from their relocations, and the loader refuses files with none);
    .symtab with `_start`; .strtab; .shstrtab. Offsets of sections are 4-byte aligned.
    """
    shstrtab = b"\0.text\0.rela.text\0.symtab\0.strtab\0.shstrtab\0"
    name = {n: shstrtab.index(b"\0" + n.encode() + b"\0") + 1
            for n in (".text", ".rela.text", ".symtab", ".strtab", ".shstrtab")}
    strtab = b"\0_start\0"
    symtab = bytes(SYM_SIZE) + struct.pack(
        "<IIIBBH", 1, entry, 0, (STB_GLOBAL << 4) | STT_FUNC, 0, 1)

    text_off = EHDR_SIZE + PHDR_SIZE
    symtab_off = _align4(text_off + len(TEXT))
    strtab_off = symtab_off + len(symtab)
    shstrtab_off = strtab_off + len(strtab)
    shoff = _align4(shstrtab_off + len(shstrtab))

    # Section indexes: 0 null, 1 .text, 2 .rela.text, 3 .symtab, 4 .strtab, 5 .shstrtab
    def shdr(nm, typ, flags, addr, off, size, link=0, info=0, align=1, entsize=0):
        return struct.pack("<10I", nm, typ, flags, addr, off, size, link, info, align, entsize)

    sections = [
        bytes(SHDR_SIZE),
        shdr(name[".text"], SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, entry, text_off, len(TEXT),
             align=4),
        shdr(name[".rela.text"], SHT_RELA, SHF_INFO_LINK, 0, symtab_off, 0, link=3, info=1,
             align=4, entsize=RELA_SIZE),
        shdr(name[".symtab"], SHT_SYMTAB, 0, 0, symtab_off, len(symtab), link=4, info=1,
             align=4, entsize=SYM_SIZE),
        shdr(name[".strtab"], SHT_STRTAB, 0, 0, strtab_off, len(strtab)),
        shdr(name[".shstrtab"], SHT_STRTAB, 0, 0, shstrtab_off, len(shstrtab)),
    ]
    ident = b"\x7fELF" + bytes([1, 1, EV_CURRENT]) + bytes(9)  # ELFCLASS32, ELFDATA2LSB
    ehdr = ident + struct.pack(
        "<HHIIIIIHHHHHH", ET_EXEC, EM_RISCV, EV_CURRENT, entry, EHDR_SIZE, shoff, 0,
        EHDR_SIZE, PHDR_SIZE, 1, SHDR_SIZE, len(sections), 5)
    phdr = struct.pack("<8I", PT_LOAD, text_off, entry, entry, len(TEXT), len(TEXT), 0x5, 4)

    image = bytearray(ehdr + phdr + TEXT)
    for off, blob in ((symtab_off, symtab), (strtab_off, strtab), (shstrtab_off, shstrtab),
                      (shoff, b"".join(sections))):
        image += bytes(off - len(image)) + blob
    return bytes(image)


def _option(args, flag):
    """Value of `flag X` or `flagX`; None when absent."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag) and len(arg) > len(flag):
            return arg[len(flag):]
    return None


def _write(path, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)


def main(args):
    if "--version" in args:
        with open(_sfpi_version_path()) as f:
            print(version_line(f.read()))
        print("This is fxport's stand-in for the sfpi compiler (mock device only).")
        return 0
    if _option(args, "-x") == "c++-header":
        print("fxport stand-in compiler: precompiled headers are not supported", file=sys.stderr)
        return 1
    out = _option(args, "-o")
    if out is None:
        print(f"fxport stand-in compiler: unsupported invocation: {args}", file=sys.stderr)
        return 1
    if "-c" in args:
        _write(out, b"")
        # TT-Metal hashes the listed dependencies to decide whether its JIT cache is current,
        # looking the object up by the target name, so the target must be `-o` verbatim.
        dep_file = _option(args, "-MF")
        if dep_file is None and ("-MD" in args or "-MMD" in args):
            dep_file = os.path.splitext(out)[0] + ".d"
        if dep_file:
            target = _option(args, "-MT") or out
            sources = [a for a in args if a.endswith(SOURCE_SUFFIXES) and not a.startswith("-")]
            _write(dep_file, f"{target}: {' '.join(sources)}\n")
        return 0
    _write(out, minimal_riscv_elf())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
