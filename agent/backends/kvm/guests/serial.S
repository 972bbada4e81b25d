# mode: real
# Serial driver: poll the 16550's line-status register (0x3fd) until the transmit holding
# register is empty (bit 5), then write the next byte of the message to COM1 (0x3f8); halt.
        .code16
        .globl _start
_start:
        mov     $msg, %si
next:
        lodsb                           # al = ds:[si++]
        test    %al, %al
        jz      done
        mov     %al, %bl
wait_thre:
        mov     $0x3fd, %dx             # LSR
        in      %dx, %al
        test    $0x20, %al              # THRE
        jz      wait_thre
        mov     $0x3f8, %dx             # THR
        mov     %bl, %al
        out     %al, %dx
        jmp     next
done:
        cli
        hlt
        jmp     done
msg:
        .asciz  "hello\n"
