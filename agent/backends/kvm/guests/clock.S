# mode: real
# The demo's guest, two vCPUs (the VMM starts both at the entry with DI = the vCPU index).
# vCPU 0, about once a second: reads the RTC (index 0x70, data 0x71), prints "HH:MM:SS" on COM1
# (polling the line-status register 0x3fd), then reads COM1's receive register (0x3f8) as a
# driver checking for input would. vCPU 1, about five times a second: reads port 0x70.
# Waiting is `sti; hlt`: with no interrupt source the VMM resumes a halted vCPU every 10 ms,
# so the guest idles without spinning.
        .code16
        .globl _start
_start:
        xor     %ax, %ax                # a stack of its own per vCPU: 0x9000 - 0x1000 * index
        mov     %ax, %ss
        mov     %di, %ax
        shl     $12, %ax
        mov     $0x9000, %sp
        sub     %ax, %sp
        test    %di, %di
        jnz     vcpu1
vcpu0:
        mov     $100, %cx
        call    sleep_ticks
        mov     $0x04, %al              # hours
        call    rtc_print
        mov     $':', %al
        call    putc
        mov     $0x02, %al              # minutes
        call    rtc_print
        mov     $':', %al
        call    putc
        mov     $0x00, %al              # seconds
        call    rtc_print
        mov     $'\n', %al
        call    putc
        mov     $0x3f8, %dx             # RBR: any input?
        in      %dx, %al
        jmp     vcpu0

vcpu1:
        mov     $20, %cx
        call    sleep_ticks
        in      $0x70, %al
        jmp     vcpu1

sleep_ticks:                            # cx = number of ~10 ms halts
        sti
        hlt
        loop    sleep_ticks
        ret

rtc_print:                              # al = CMOS register; prints its two BCD digits
        out     %al, $0x70
        in      $0x71, %al
        push    %ax
        shr     $4, %al
        add     $'0', %al
        call    putc
        pop     %ax
        and     $0x0f, %al
        add     $'0', %al
        call    putc
        ret

putc:                                   # al = byte; waits for THRE (LSR bit 5)
        push    %dx
        push    %ax
        mov     $0x3fd, %dx
1:      in      %dx, %al
        test    $0x20, %al
        jz      1b
        pop     %ax
        mov     $0x3f8, %dx
        out     %al, %dx
        pop     %dx
        ret
