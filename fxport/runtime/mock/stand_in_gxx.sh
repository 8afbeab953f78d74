#!/bin/sh
# fxport's stand-in for the sfpi compiler riscv-tt-elf-g++, for the mock device only.
# Installed as <runtime root>/runtime/sfpi/compiler/bin/riscv-tt-elf-g++ by build_runtime_root,
# which also writes its data files (see toolchain.py) to <root>/runtime/sfpi/compiler/fxport/.
#   --version          the real compiler's version line (TT-Metal hashes it into the firmware key)
#   -x c++-header      fail: TT-Metal then skips the precompiled header, with a warning
#   -c                 empty object at -o; make-style dependency file at -MF (TT-Metal hashes the
#                      listed files and looks the object up by its -o name, so keep it verbatim)
#   otherwise, -o      a link: a minimal RISC-V ELF the TT-Metal loader accepts
# POSIX sh on purpose: this runs for every compile and link step of every kernel.
data="${0%/*}/../fxport"
out= dep= target= compile= md= sources= prev=
for arg in "$@"; do
    case $prev in
        -o) out=$arg ;;
        -MF) dep=$arg ;;
        -MT) target=$arg ;;
        -x) if [ "$arg" = c++-header ]; then
                echo "fxport stand-in compiler: no precompiled headers" >&2
                exit 1
            fi ;;
    esac
    case $arg in
        --version) cat "$data/version"; exit 0 ;;
        -c) compile=1 ;;
        -MD | -MMD) md=1 ;;
        -o?*) out=${arg#-o} ;;
        -MF?*) dep=${arg#-MF} ;;
        -MT?*) target=${arg#-MT} ;;
        -xc++-header) echo "fxport stand-in compiler: no precompiled headers" >&2; exit 1 ;;
        -*) ;;
        *.c | *.cc | *.cpp | *.cxx | *.S | *.s) sources="$sources $arg" ;;
    esac
    prev=$arg
done
if [ -z "$out" ]; then
    echo "fxport stand-in compiler: unsupported invocation: $*" >&2
    exit 1
fi
if [ -n "$compile" ]; then
    : > "$out" || exit 1
    if [ -z "$dep" ] && [ -n "$md" ]; then
        dep="${out%.*}.d"
    fi
    if [ -n "$dep" ]; then
        printf '%s:%s\n' "${target:-$out}" "$sources" > "$dep" || exit 1
    fi
    exit 0
fi
cp "$data/minimal.elf" "$out"
