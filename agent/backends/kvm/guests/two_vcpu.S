# mode: real
# Two vCPUs reading different ports: vCPU 0 reads port 0x100 three times, vCPU 1 reads port
# 0x200 three times, then each halts. The VMM starts every vCPU at the entry with DI = its
# index; `ap_start` is also a valid entry of its own for vCPU 1 (per-vCPU entries).
        .code16
        .globl _start, ap_start
_start:
        test    %di, %di
        jnz     ap_start
        mov     $0x100, %dx
        jmp     read3
ap_start:
        mov     $0x200, %dx
read3:
        mov     $3, %cx
1:      in      %dx, %al
        loop    1b
        cli
        hlt
