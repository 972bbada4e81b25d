# mode: real
# The benchmark guest: `in al, dx` on port 0x80 forever (every iteration is one VM exit).
        .code16
        .globl _start
_start:
        mov     $0x80, %dx
1:      in      %dx, %al
        jmp     1b
