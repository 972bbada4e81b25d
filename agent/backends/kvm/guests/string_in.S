# mode: long
# String input (64-bit long mode): `rep insb` (8 bytes), `rep insw` (4 words) and one `insd`
# from port 0xe0 into buf, then halt. The VMM advances RDI / RCX as the hardware would:
# at the HLT, RDI = buf + 8 + 8 + 4 and RCX = 0.
        .code64
        .globl _start, buf
_start:
        cld
        mov     $0xe0, %dx
        mov     $buf, %edi
        mov     $8, %ecx
        rep insb
        mov     $4, %ecx
        rep insw
        insl
        cli
        hlt
        .balign 16
buf:
        .space  32
