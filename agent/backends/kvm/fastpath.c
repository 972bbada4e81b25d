/*
 * The kvm backend's fast path: the KVM_RUN loop in C, for the exits that need no Python.
 *
 * A vCPU thread calls ioin_run() through ctypes, which releases the GIL for the call: the guest
 * runs, and the exits below are answered here, without the interpreter, until one needs Python.
 *
 * - Port I/O on a port no device owns and no hook watches (plan P_OPEN): open bus, counted per
 *   port (IN reads all ones, OUT is dropped) - what agent/backends/kvm/bus.py does.
 * - A single (non-string) IN/OUT on an open-bus port whose hooks only observe (P_OBSERVE), at an
 *   instruction Python has decoded and installed in the insn cache: the access is answered as
 *   open bus and recorded in the ring (timestamp, port, size, value, instruction start, the 18
 *   general registers from the kvm_run sync area). Python turns the ring into event columns.
 *   The cache entry keeps the instruction's bytes and where they live in host memory; they are
 *   compared on every use, so code the guest rewrites is decoded again (by Python).
 *
 * - P_COND: the same, when every hook on the port has a condition simple enough for
 *   ioin_cond_eval() (agent/script/bytecode.py compiles them, OR-ed): a false condition answers
 *   the access as open bus and records nothing, so such a hit never reaches Python; a true one is
 *   recorded as P_OBSERVE records (Python then applies each hook's own condition to the ring).
 *
 * Everything else returns R_SLOW with the exit still pending in kvm_run, and Python handles it
 * as its own loop would: devices, hooks that act (set, skip, break), string I/O, MMIO, HLT...
 * R_FLUSH asks Python to drain the ring (full, or its oldest access is flush_ns old), R_TICK
 * comes every tick_mask + 1 exits (flood checks, table changes), R_ERRNO when KVM_RUN fails
 * (EINTR: a kick).
 *
 * Registers: KVM copies them into kvm_run on every exit only while kvm_valid_regs asks for it,
 * which costs ~10 % of an exit under nested KVM. So they are asked for only while hooked ports
 * see traffic: after quiet_exits exits without a hooked one they are switched off, and the next
 * hooked exit goes to Python (which fetches the registers by ioctl) and switches them back on.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define NREGS 18
#define INSN_SLOTS 64 /* a power of two; see ioin_insn_slot() */

enum { P_SLOW = 0, P_OPEN = 1, P_OBSERVE = 2, P_HOOKED = 3, P_COND = 4 };
/* Script conditions (agent/script/bytecode.py, Op): a stack program over the port and the 18
 * registers of struct kvm_regs; Python validated it (stack depth <= COND_STACK, jumps inside). */
#define COND_STACK 16
enum { C_END, C_CONST, C_PORT, C_REG, C_ADD, C_SUB, C_MUL, C_DIV, C_MOD, C_SHL, C_SHR, C_AND,
       C_OR, C_XOR, C_EQ, C_NE, C_LT, C_GT, C_LE, C_GE, C_NEG, C_INV, C_NOT, C_JZ, C_JNZ,
       C_BOOL };
enum { R_SLOW = 0, R_FLUSH = 1, R_TICK = 2, R_ERRNO = 3 };

struct ioin_insn {
    uint64_t rip, cs_base, cr0, cr3, efer; /* the key: where, and in which mode */
    uint64_t start;                        /* the instruction's first byte (Event.rip) */
    const uint8_t *host;                   /* its bytes in host memory */
    uint32_t key; /* port | in << 16 | (dx == port) << 17 | cs.l << 18 | 1 << 31; 0: empty */
    uint32_t len; /* bytes of code to compare */
    uint8_t code[16];
};

struct ioin_fast {
    /* set by Python */
    int32_t fd;
    uint32_t cap; /* ring capacity, in accesses */
    struct kvm_run *run;
    const uint8_t *plan; /* [in << 16 | port] -> P_* */
    uint64_t *ob_reads, *ob_writes;
    struct ioin_insn *insns;
    uint64_t *ts, *rip, *regs;  /* ring columns: cap, cap, cap * NREGS */
    uint32_t *value, *key;      /* key: port | in << 16 | size << 17 */
    uint64_t flush_ns;          /* drain when the oldest access in the ring is this old */
    uint64_t tick_mask;         /* R_TICK when (exits & tick_mask) == 0 */
    uint64_t quiet_exits;       /* registers unsynced after this many exits without a hook */
    uint64_t sync_bits;         /* KVM_SYNC_X86_REGS | _SREGS where supported, else 0 */
    const uint64_t *const *conds; /* [in << 16 | port] -> condition program (P_COND ports) */
    /* maintained here, read by Python */
    uint64_t exits;
    uint64_t last_hooked; /* exits at the last exit on a hooked port */
    uint64_t first_ts;    /* ts of the ring's first access */
    uint32_t n;           /* accesses in the ring */
    int32_t err;          /* errno of the failed KVM_RUN (R_ERRNO) */
};

uint32_t ioin_insn_slot(uint64_t rip, uint32_t port)
{
    return (uint32_t)(rip ^ (rip >> 6) ^ port) & (INSN_SLOTS - 1);
}

uint32_t ioin_abi(void)
{
    return (uint32_t)(sizeof(struct ioin_fast) << 16 | sizeof(struct ioin_insn) << 8 | INSN_SLOTS);
}

/* Every constant Python shares with this file, by name; abi.py compares them all at load. */
struct ioin_const {
    const char *name;
    int64_t value;
};
#define ABI_CONST(x) {#x, (int64_t)(x)}
static const struct ioin_const CONSTANTS[] = {
    ABI_CONST(P_SLOW),     ABI_CONST(P_OPEN),  ABI_CONST(P_OBSERVE), ABI_CONST(P_HOOKED),
    ABI_CONST(P_COND),     ABI_CONST(COND_STACK),
    ABI_CONST(C_END), ABI_CONST(C_CONST), ABI_CONST(C_PORT), ABI_CONST(C_REG), ABI_CONST(C_ADD),
    ABI_CONST(C_SUB), ABI_CONST(C_MUL), ABI_CONST(C_DIV), ABI_CONST(C_MOD), ABI_CONST(C_SHL),
    ABI_CONST(C_SHR), ABI_CONST(C_AND), ABI_CONST(C_OR), ABI_CONST(C_XOR), ABI_CONST(C_EQ),
    ABI_CONST(C_NE), ABI_CONST(C_LT), ABI_CONST(C_GT), ABI_CONST(C_LE), ABI_CONST(C_GE),
    ABI_CONST(C_NEG), ABI_CONST(C_INV), ABI_CONST(C_NOT), ABI_CONST(C_JZ), ABI_CONST(C_JNZ),
    ABI_CONST(C_BOOL),
    ABI_CONST(R_SLOW),     ABI_CONST(R_FLUSH), ABI_CONST(R_TICK),    ABI_CONST(R_ERRNO),
    ABI_CONST(NREGS),      ABI_CONST(INSN_SLOTS),
    ABI_CONST(KVM_EXIT_IO), ABI_CONST(KVM_EXIT_IO_IN),
    {NULL, 0},
};

const struct ioin_const *ioin_constants(void)
{
    return CONSTANTS;
}

int ioin_cond_eval(const uint64_t *code, uint32_t port, const uint64_t *regs)
{
    uint64_t st[COND_STACK];
    int sp = 0;
    for (uint32_t pc = 0;;) {
        uint64_t op = code[pc++], a, b;
        switch (op) {
        case C_END: return st[sp - 1] != 0;
        case C_CONST: st[sp++] = code[pc++]; continue;
        case C_PORT: st[sp++] = port; continue;
        case C_REG: st[sp++] = regs[code[pc++]]; continue;
        case C_NEG: st[sp - 1] = -st[sp - 1]; continue;
        case C_INV: st[sp - 1] = ~st[sp - 1]; continue;
        case C_NOT: st[sp - 1] = st[sp - 1] == 0; continue;
        case C_BOOL: st[sp - 1] = st[sp - 1] != 0; continue;
        case C_JZ: case C_JNZ:
            a = st[--sp];
            if ((a == 0) == (op == C_JZ)) { st[sp++] = op == C_JNZ; pc = (uint32_t)code[pc]; }
            else pc++;
            continue;
        }
        b = st[--sp];
        a = st[sp - 1];
        switch (op) {
        case C_ADD: a += b; break;
        case C_SUB: a -= b; break;
        case C_MUL: a *= b; break;
        case C_DIV: if (!b) return 0; a /= b; break;
        case C_MOD: if (!b) return 0; a %= b; break;
        case C_SHL: a = b < 64 ? a << b : 0; break;
        case C_SHR: a = b < 64 ? a >> b : 0; break;
        case C_AND: a &= b; break;
        case C_OR: a |= b; break;
        case C_XOR: a ^= b; break;
        case C_EQ: a = a == b; break;
        case C_NE: a = a != b; break;
        case C_LT: a = (int64_t)a < (int64_t)b; break;
        case C_GT: a = (int64_t)a > (int64_t)b; break;
        case C_LE: a = (int64_t)a <= (int64_t)b; break;
        case C_GE: a = (int64_t)a >= (int64_t)b; break;
        default: return 0;
        }
        st[sp - 1] = a;
    }
}

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The cached instruction behind this exit, or NULL (Python decodes it). */
static const struct ioin_insn *lookup(const struct ioin_fast *f, const struct kvm_run *run,
                                      uint32_t in, uint32_t port)
{
    const struct kvm_regs *r = &run->s.regs.regs;
    const struct kvm_sregs *s = &run->s.regs.sregs;
    uint32_t key = port | in << 16 | (uint32_t)((r->rdx & 0xffff) == port) << 17 |
                   (uint32_t)(s->cs.l != 0) << 18 | 1u << 31;
    const struct ioin_insn *slot = &f->insns[ioin_insn_slot(r->rip, port)];
    if (slot->key != key || slot->rip != r->rip || slot->cs_base != s->cs.base ||
        slot->cr0 != s->cr0 || slot->cr3 != s->cr3 || slot->efer != s->efer)
        return NULL;
    if (memcmp(slot->host, slot->code, slot->len) != 0)
        return NULL; /* the guest rewrote it */
    return slot;
}

int ioin_run(struct ioin_fast *f)
{
    struct kvm_run *run = f->run;
    for (;;) {
        if (f->sync_bits) {
            uint64_t want = f->exits - f->last_hooked < f->quiet_exits ? f->sync_bits : 0;
            if (run->kvm_valid_regs != want)
                run->kvm_valid_regs = want;
        }
        if (ioctl(f->fd, KVM_RUN, 0) < 0) {
            f->err = errno;
            return R_ERRNO;
        }
        uint64_t exits = ++f->exits;
        if (run->exit_reason != KVM_EXIT_IO)
            return R_SLOW;
        uint32_t in = run->io.direction == KVM_EXIT_IO_IN;
        uint32_t port = run->io.port, size = run->io.size, count = run->io.count;
        uint8_t *data = (uint8_t *)run + run->io.data_offset;
        uint8_t plan = f->plan[in << 16 | port];
        if (plan == P_OPEN) {
            if (in) {
                f->ob_reads[port]++;
                memset(data, 0xff, (size_t)size * count);
            } else {
                f->ob_writes[port]++;
            }
        } else if (plan == P_COND && count == 1 && run->kvm_valid_regs == f->sync_bits &&
                   f->sync_bits != 0 &&
                   !ioin_cond_eval(f->conds[in << 16 | port], port,
                                   (const uint64_t *)&run->s.regs.regs)) {
            f->last_hooked = exits; /* keep the registers coming: the condition reads them */
            if (in) {
                f->ob_reads[port]++;
                memset(data, 0xff, size);
            } else {
                f->ob_writes[port]++;
            }
        } else if (plan == P_OBSERVE || plan == P_COND) {
            f->last_hooked = exits;
            const struct ioin_insn *insn;
            if (count != 1 || (size != 1 && size != 2 && size != 4) ||
                run->kvm_valid_regs != f->sync_bits || f->sync_bits == 0 || f->n >= f->cap ||
                (insn = lookup(f, run, in, port)) == NULL)
                return R_SLOW;
            uint32_t i = f->n, value = 0;
            uint64_t ts = now_ns();
            if (in) {
                f->ob_reads[port]++;
                memset(data, 0xff, size);
                value = size == 4 ? 0xffffffffu : (1u << (size * 8)) - 1;
            } else {
                f->ob_writes[port]++;
                memcpy(&value, data, size);
            }
            f->ts[i] = ts;
            f->rip[i] = insn->start;
            memcpy(&f->regs[(size_t)i * NREGS], &run->s.regs.regs, NREGS * sizeof(uint64_t));
            f->value[i] = value;
            f->key[i] = port | in << 16 | size << 17;
            if (i == 0)
                f->first_ts = ts;
            f->n = i + 1;
            if (f->n >= f->cap || ts - f->first_ts >= f->flush_ns)
                return R_FLUSH;
        } else {
            if (plan == P_HOOKED)
                f->last_hooked = exits;
            return R_SLOW;
        }
        if ((exits & f->tick_mask) == 0)
            return R_TICK;
    }
}
