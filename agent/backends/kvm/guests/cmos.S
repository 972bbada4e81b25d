# mode: protected
# CMOS clock reader (32-bit protected mode): reads hours, minutes and seconds from the RTC
# (index port 0x70, data port 0x71; BCD) and prints "HH:MM:SS" and a newline on COM1; halts.
        .code32
        .globl _start
_start:
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
done:
        cli
        hlt
        jmp     done

rtc_print:                              # al = CMOS register; prints its two BCD digits
        out     %al, $0x70
        in      $0x71, %al
        push    %eax
        shr     $4, %al
        add     $'0', %al
        call    putc
        pop     %eax
        and     $0x0f, %al
        add     $'0', %al
        call    putc
        ret

putc:                                   # al = byte; waits for THRE like a real driver
        push    %eax
        mov     $0x3fd, %dx
1:      in      %dx, %al
        test    $0x20, %al
        jz      1b
        pop     %eax
        mov     $0x3f8, %dx
        out     %al, %dx
        ret
