// Software confirmers of built-in detectors (cards, SSNs, phone numbers, e-mail addresses, IPv4
// and IPv6 addresses, IBANs, JWTs, tokens, secret assignments): for each built-in pattern, every
// match end in a window with the leftmost start of a match ending there — what a Hyperscan block
// scan with HS_FLAG_SOM_LEFTMOST reports for the same bytes, without a scan.
//
// Each pattern is written out by hand from its expression in corpora/ (the comment above each
// function quotes it). The window is treated as a whole buffer: bytes outside it are absent,
// so `\b` holds at its edges next to a word byte, as in Hyperscan. Tests compare every function
// with Hyperscan on random windows.

#include "mask_kernel.h"

#include <pthread.h>
#include <string.h>

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static inline int is_word(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

typedef struct {
    const uint8_t *d;
    size_t n;
    /// best[slot * (n + 1) + end]: leftmost start + 1, 0 when none.
    uint16_t *best;
    const uint8_t *slot_of;  ///< native pattern id -> detector slot, 0xFF when disabled
    size_t low, high;        ///< the range of ends written so far (low > high: none)
} ctx_t;

static inline int word_at(const ctx_t *c, size_t i) { return i < c->n && is_word(c->d[i]); }
/// `\b` at position i (between bytes i-1 and i).
static inline int boundary(const ctx_t *c, size_t i) {
    int before = i > 0 && is_word(c->d[i - 1]);
    return before != word_at(c, i);
}
static inline int digit_at(const ctx_t *c, size_t i) { return i < c->n && is_digit(c->d[i]); }
static inline int byte_is(const ctx_t *c, size_t i, uint8_t b) { return i < c->n && c->d[i] == b; }
static inline int digits(const ctx_t *c, size_t i, size_t count) {
    if (i + count > c->n) return 0;
    for (size_t k = 0; k < count; k++) if (!is_digit(c->d[i + k])) return 0;
    return 1;
}
/// Number of consecutive digits from i.
static inline size_t digit_span(const ctx_t *c, size_t i) {
    size_t k = 0;
    while (i + k < c->n && is_digit(c->d[i + k])) k++;
    return k;
}
static inline int in_set(const ctx_t *c, size_t i, const char *set) {
    if (i >= c->n) return 0;
    uint8_t b = c->d[i];
    for (const char *p = set; *p; p++) if ((uint8_t)*p == b) return 1;
    return 0;
}

static inline void emit(ctx_t *c, int pattern, size_t start, size_t end) {
    uint8_t slot = c->slot_of[pattern];
    if (slot == 0xFF) return;
    uint16_t *cell = &c->best[(size_t)slot * (c->n + 1) + end];
    if (*cell == 0 || *cell > start + 1) *cell = (uint16_t)(start + 1);
    if (end < c->low) c->low = end;
    if (end > c->high) c->high = end;
}

// MARK: - Cards

// '\b(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|6(?:011|5\d{2}|4[4-9]\d))(?:\d{12}|(?: \d{4}){3}|(?:-\d{4}){3})\b'
static void card_iin(ctx_t *c, size_t s) {
    if (!boundary(c, s) || s + 4 > c->n) return;
    const uint8_t *d = c->d + s;
    int ok = 0;
    if (d[0] == '4') ok = digits(c, s + 1, 3);
    else if (d[0] == '5') ok = d[1] >= '1' && d[1] <= '5' && digits(c, s + 2, 2);
    else if (d[0] == '2') ok = d[1] >= '2' && d[1] <= '7' && digits(c, s + 2, 2);
    else if (d[0] == '6') {
        ok = (d[1] == '0' && d[2] == '1' && d[3] == '1') || (d[1] == '5' && digits(c, s + 2, 2))
            || (d[1] == '4' && d[2] >= '4' && d[2] <= '9' && digit_at(c, s + 3));
    }
    if (!ok) return;
    size_t q = s + 4;
    if (digits(c, q, 12) && boundary(c, q + 12)) emit(c, MK_PAT_CARD_IIN, s, q + 12);
    for (int sep = 0; sep < 2; sep++) {
        uint8_t ch = sep ? '-' : ' ';
        int good = 1;
        for (int g = 0; g < 3 && good; g++) good = byte_is(c, q + 5 * g, ch) && digits(c, q + 5 * g + 1, 4);
        if (good && boundary(c, q + 15)) emit(c, MK_PAT_CARD_IIN, s, q + 15);
    }
}

// '\b4\d{12}(?:\d{6})?\b'
static void card_visa(ctx_t *c, size_t s) {
    if (!boundary(c, s) || !byte_is(c, s, '4') || !digits(c, s + 1, 12)) return;
    if (boundary(c, s + 13)) emit(c, MK_PAT_CARD_VISA, s, s + 13);
    if (digits(c, s + 13, 6) && boundary(c, s + 19)) emit(c, MK_PAT_CARD_VISA, s, s + 19);
}

// '\b3[47]\d{2}(?:\d{11}| \d{6} \d{5}|-\d{6}-\d{5})\b'
static void card_amex(ctx_t *c, size_t s) {
    if (!boundary(c, s) || !byte_is(c, s, '3') || !(byte_is(c, s + 1, '4') || byte_is(c, s + 1, '7')) || !digits(c, s + 2, 2)) return;
    size_t q = s + 4;
    if (digits(c, q, 11) && boundary(c, q + 11)) emit(c, MK_PAT_CARD_AMEX, s, q + 11);
    for (int sep = 0; sep < 2; sep++) {
        uint8_t ch = sep ? '-' : ' ';
        if (byte_is(c, q, ch) && digits(c, q + 1, 6) && byte_is(c, q + 7, ch) && digits(c, q + 8, 5) && boundary(c, q + 13))
            emit(c, MK_PAT_CARD_AMEX, s, q + 13);
    }
}

// MARK: - SSNs

// '\b\d{3}-\d{2}-\d{4}\b'
static void ssn_dashed(ctx_t *c, size_t s) {
    if (boundary(c, s) && digits(c, s, 3) && byte_is(c, s + 3, '-') && digits(c, s + 4, 2) && byte_is(c, s + 6, '-')
        && digits(c, s + 7, 4) && boundary(c, s + 11))
        emit(c, MK_PAT_SSN_DASHED, s, s + 11);
}

// '\b\d{9}\b' and '\b\d{3} \d{2} \d{4}\b'
static void ssn_plain(ctx_t *c, size_t s) {
    if (!boundary(c, s)) return;
    if (digits(c, s, 9) && boundary(c, s + 9)) emit(c, MK_PAT_SSN_NINE, s, s + 9);
    if (digits(c, s, 3) && byte_is(c, s + 3, ' ') && digits(c, s + 4, 2) && byte_is(c, s + 6, ' ') && digits(c, s + 7, 4)
        && boundary(c, s + 11))
        emit(c, MK_PAT_SSN_SPACED, s, s + 11);
}

// MARK: - Phones

// '\+[1-9]\d{0,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}'
// Every (position, groups) state is visited once, so the walk is linear in the window.
static void phone_e164(ctx_t *c, size_t s) {
    if (!byte_is(c, s, '+') || !(s + 1 < c->n && c->d[s + 1] >= '1' && c->d[s + 1] <= '9')) return;
    // Each (position, groups) state is pushed at most once: the stack never holds more.
    uint8_t seen[(c->n + 1) * 7];
    memset(seen, 0, sizeof(seen));
    uint16_t stack_pos[(c->n + 1) * 7];
    uint8_t stack_groups[(c->n + 1) * 7];
    size_t top = 0;
    size_t after_cc = s + 2;
    size_t cc = digit_span(c, after_cc);
    for (size_t k = 0; k <= 3 && k <= cc; k++) {
        size_t p = after_cc + k;
        if (!seen[p * 7]) { seen[p * 7] = 1; stack_pos[top] = (uint16_t)p; stack_groups[top] = 0; top++; }
    }
    while (top > 0) {
        top--;
        size_t p = stack_pos[top];
        uint8_t g = stack_groups[top];
        if (g >= 1) emit(c, MK_PAT_PHONE_E164, s, p);
        if (g == 6) continue;
        for (int sep = 0; sep < 2; sep++) {
            size_t q = p;
            if (sep) { if (!in_set(c, q, " .-")) continue; q++; }
            for (int open = 0; open < 2; open++) {
                size_t r = q;
                if (open) { if (!byte_is(c, r, '(')) continue; r++; }
                size_t run = digit_span(c, r);
                for (size_t j = 1; j <= 5 && j <= run; j++) {
                    for (int close = 0; close < 2; close++) {
                        size_t e = r + j;
                        if (close) { if (!byte_is(c, e, ')')) continue; e++; }
                        uint8_t *mark = &seen[e * 7 + g + 1];
                        if (*mark) continue;
                        *mark = 1;
                        stack_pos[top] = (uint16_t)e; stack_groups[top] = (uint8_t)(g + 1); top++;
                    }
                }
            }
        }
    }
}

// '(?:\b1[ .-])?(?:\(\d{3}\) ?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b'
static void phone_us_from(ctx_t *c, size_t origin, size_t q) {
    // After the optional `1 ` prefix: `(ddd)` + optional space, or `\bddd[ .-]`.
    size_t heads[2] = {0, 0};
    int count = 0;
    if (byte_is(c, q, '(') && digits(c, q + 1, 3) && byte_is(c, q + 4, ')')) {
        heads[count++] = q + 5;
        if (byte_is(c, q + 5, ' ')) heads[count++] = q + 6;
    }
    size_t alt[1] = {0};
    int alt_count = 0;
    if (boundary(c, q) && digits(c, q, 3) && in_set(c, q + 3, " .-")) alt[alt_count++] = q + 4;
    for (int i = 0; i < count + alt_count; i++) {
        size_t h = i < count ? heads[i] : alt[i - count];
        if (digits(c, h, 3) && in_set(c, h + 3, " .-") && digits(c, h + 4, 4) && boundary(c, h + 8))
            emit(c, MK_PAT_PHONE_US, origin, h + 8);
    }
}
static void phone_us(ctx_t *c, size_t s) {
    phone_us_from(c, s, s);
    if (boundary(c, s) && byte_is(c, s, '1') && in_set(c, s + 1, " .-")) phone_us_from(c, s, s + 2);
}

// '\b0[1-9](?: \d{2}){4}\b' and '\b0[1-9](?:\.\d{2}){4}\b'
static void phone_pairs(ctx_t *c, size_t s) {
    if (!boundary(c, s) || !byte_is(c, s, '0') || !(s + 1 < c->n && c->d[s + 1] >= '1' && c->d[s + 1] <= '9')) return;
    for (int kind = 0; kind < 2; kind++) {
        uint8_t ch = kind ? '.' : ' ';
        int good = 1;
        for (int g = 0; g < 4 && good; g++) good = byte_is(c, s + 2 + 3 * g, ch) && digits(c, s + 3 + 3 * g, 2);
        if (good && boundary(c, s + 14)) emit(c, kind ? MK_PAT_PHONE_DOTS : MK_PAT_PHONE_PAIRS, s, s + 14);
    }
}

/// `\b0[1-9]` then `lead_min..lead_max` digits; returns the positions after the lead (bitmask of lengths).
static int trunk_lead(ctx_t *c, size_t s, size_t lead_min, size_t lead_max, size_t *after, int *count) {
    *count = 0;
    if (!boundary(c, s) || !byte_is(c, s, '0') || !(s + 1 < c->n && c->d[s + 1] >= '1' && c->d[s + 1] <= '9')) return 0;
    size_t run = digit_span(c, s + 2);
    for (size_t j = lead_min; j <= lead_max && j <= run; j++) after[(*count)++] = s + 2 + j;
    return *count > 0;
}

// '\b0[1-9]\d{1,3}[ /]\d{6,8}\b'
static void phone_area_slash(ctx_t *c, size_t s) {
    size_t after[8];
    int count;
    if (!trunk_lead(c, s, 1, 3, after, &count)) return;
    for (int i = 0; i < count; i++) {
        size_t p = after[i];
        if (!in_set(c, p, " /")) continue;
        size_t run = digit_span(c, p + 1);
        for (size_t k = 6; k <= 8 && k <= run; k++)
            if (boundary(c, p + 1 + k)) emit(c, MK_PAT_PHONE_AREA_SLASH, s, p + 1 + k);
    }
}

// '\b0[1-9]\d{0,4}[ -]\d{3,4}[ -]\d{3,4}\b'
static void phone_three_groups(ctx_t *c, size_t s) {
    size_t after[8];
    int count;
    if (!trunk_lead(c, s, 0, 4, after, &count)) return;
    for (int i = 0; i < count; i++) {
        size_t p = after[i];
        if (!in_set(c, p, " -")) continue;
        size_t run = digit_span(c, p + 1);
        for (size_t k = 3; k <= 4 && k <= run; k++) {
            size_t q = p + 1 + k;
            if (!in_set(c, q, " -")) continue;
            size_t run2 = digit_span(c, q + 1);
            for (size_t m = 3; m <= 4 && m <= run2; m++)
                if (boundary(c, q + 1 + m)) emit(c, MK_PAT_PHONE_THREE_GROUPS, s, q + 1 + m);
        }
    }
}

// '\b0[1-9]\d{0,4}[ /-]\d{5,8}\b'
static void phone_two_groups(ctx_t *c, size_t s) {
    size_t after[8];
    int count;
    if (!trunk_lead(c, s, 0, 4, after, &count)) return;
    for (int i = 0; i < count; i++) {
        size_t p = after[i];
        if (!in_set(c, p, " /-")) continue;
        size_t run = digit_span(c, p + 1);
        for (size_t k = 5; k <= 8 && k <= run; k++)
            if (boundary(c, p + 1 + k)) emit(c, MK_PAT_PHONE_TWO_GROUPS, s, p + 1 + k);
    }
}

// '\(0[1-9]\d{1,4}\) ?\d{3,4}[ -]?\d{3,4}\b'
static void phone_paren_area(ctx_t *c, size_t s) {
    if (!byte_is(c, s, '(') || !byte_is(c, s + 1, '0') || !(s + 2 < c->n && c->d[s + 2] >= '1' && c->d[s + 2] <= '9')) return;
    size_t run = digit_span(c, s + 3);
    for (size_t j = 1; j <= 4 && j <= run; j++) {
        size_t p = s + 3 + j;
        if (!byte_is(c, p, ')')) continue;
        p++;
        for (int space = 0; space < 2; space++) {
            size_t q = p;
            if (space) { if (!byte_is(c, q, ' ')) continue; q++; }
            size_t run1 = digit_span(c, q);
            for (size_t k = 3; k <= 4 && k <= run1; k++) {
                size_t r0 = q + k;
                for (int sep = 0; sep < 2; sep++) {
                    size_t r = r0;
                    if (sep) { if (!in_set(c, r, " -")) continue; r++; }
                    size_t run2 = digit_span(c, r);
                    for (size_t m = 3; m <= 4 && m <= run2; m++)
                        if (boundary(c, r + m)) emit(c, MK_PAT_PHONE_PAREN_AREA, s, r + m);
                }
            }
        }
    }
}

// MARK: - E-mail addresses

static inline int is_alpha(uint8_t b) { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z'); }
static inline uint8_t lower(uint8_t b) { return (b >= 'A' && b <= 'Z') ? (uint8_t)(b + 32) : b; }
static inline int is_blank(uint8_t b) { return b == ' ' || b == '\t'; }
static inline int is_quote(uint8_t b) { return b == '"' || b == '\''; }
/// `\s`: [\t\n\v\f\r ].
static inline int is_space(uint8_t b) { return b == ' ' || (b >= '\t' && b <= '\r'); }
static inline int is_local(uint8_t b) {
    return is_alpha(b) || is_digit(b) || b == '.' || b == '_' || b == '%' || b == '+' || b == '-';
}
static inline int is_label(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '-'; }

/// The local part `[A-Za-z0-9._%+-]+` ending at `at` (exclusive) and the domain
/// `[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}` from `domain`: one match per domain end.
static void email_from(ctx_t *c, int pattern, size_t at, size_t domain) {
    if (at == 0 || !is_local(c->d[at - 1])) return;
    size_t start = at - 1;
    while (start > 0 && is_local(c->d[start - 1])) start--;
    size_t labels = 0, length = 0;
    int alpha = 1;
    for (size_t q = domain; q < c->n; q++) {
        uint8_t b = c->d[q];
        if (is_label(b)) {
            length++;
            alpha = alpha && is_alpha(b);
            if (labels >= 1 && alpha && length >= 2) emit(c, pattern, start, q + 1);
        } else if (b == '.' && length > 0) {
            labels++;
            length = 0;
            alpha = 1;
        } else {
            break;
        }
    }
}

// '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}'
// '[A-Za-z0-9._%+-]+%(?:25)?40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}'
// '[A-Za-z0-9._%+-]+&#(?:64|x40);[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}'
static void email_at(ctx_t *c, size_t p) {
    uint8_t b = c->d[p];
    if (b == '@') {
        email_from(c, MK_PAT_EMAIL_AT, p, p + 1);
    } else if (b == '%') {
        if (byte_is(c, p + 1, '4') && byte_is(c, p + 2, '0')) email_from(c, MK_PAT_EMAIL_PERCENT, p, p + 3);
        if (byte_is(c, p + 1, '2') && byte_is(c, p + 2, '5') && byte_is(c, p + 3, '4') && byte_is(c, p + 4, '0'))
            email_from(c, MK_PAT_EMAIL_PERCENT, p, p + 5);
    } else if (b == '&' && byte_is(c, p + 1, '#')) {
        if (byte_is(c, p + 2, '6') && byte_is(c, p + 3, '4') && byte_is(c, p + 4, ';')) email_from(c, MK_PAT_EMAIL_ENTITY, p, p + 5);
        if (byte_is(c, p + 2, 'x') && byte_is(c, p + 3, '4') && byte_is(c, p + 4, '0') && byte_is(c, p + 5, ';'))
            email_from(c, MK_PAT_EMAIL_ENTITY, p, p + 6);
    }
}

// MARK: - IPv4, IBAN, JWT

// '\b(?:\d{1,3}\.){3}\d{1,3}\b'
static void ipv4(ctx_t *c, size_t s) {
    if (!boundary(c, s)) return;
    size_t p = s;
    for (int group = 0; group < 4; group++) {
        size_t run = digit_span(c, p);
        if (run < 1 || run > 3) return;
        p += run;
        if (group < 3) {
            if (!byte_is(c, p, '.')) return;
            p++;
        }
    }
    if (boundary(c, p)) emit(c, MK_PAT_IPV4, s, p);
}

static inline int is_upper(uint8_t b) { return b >= 'A' && b <= 'Z'; }
static inline int is_upper_alnum(uint8_t b) { return is_upper(b) || is_digit(b); }
static inline int upper_alnum_at(const ctx_t *c, size_t i) { return i < c->n && is_upper_alnum(c->d[i]); }

// '\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b'
// '\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?\b'
static void iban(ctx_t *c, size_t s) {
    if (!boundary(c, s) || s + 4 > c->n || !is_upper(c->d[s]) || !is_upper(c->d[s + 1]) || !digits(c, s + 2, 2)) return;
    size_t q = s + 4;
    size_t run = 0;
    while (run < 30 && upper_alnum_at(c, q + run)) run++;
    for (size_t k = 11; k <= run; k++)
        if (boundary(c, q + k)) emit(c, MK_PAT_IBAN_COMPACT, s, q + k);
    size_t p = q;
    for (int groups = 1; groups <= 7; groups++) {
        if (!byte_is(c, p, ' ')) break;
        int good = 1;
        for (int k = 1; k <= 4 && good; k++) good = upper_alnum_at(c, p + k);
        if (!good) break;
        p += 5;
        if (groups < 2) continue;
        if (boundary(c, p)) emit(c, MK_PAT_IBAN_SPACED, s, p);
        if (byte_is(c, p, ' ')) {
            for (size_t j = 1; j <= 3 && upper_alnum_at(c, p + j); j++)
                if (boundary(c, p + 1 + j)) emit(c, MK_PAT_IBAN_SPACED, s, p + 1 + j);
        }
    }
}

static inline int is_token(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '_' || b == '-'; }

// '\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2}'
static void jwt(ctx_t *c, size_t s) {
    if (!boundary(c, s) || !byte_is(c, s, 'e') || !byte_is(c, s + 1, 'y') || !byte_is(c, s + 2, 'J')) return;
    size_t p = s + 3;
    while (p < c->n && is_token(c->d[p])) p++;
    if (p - (s + 3) < 5 || !byte_is(c, p, '.')) return;
    if (p + 2 < c->n && is_token(c->d[p + 1]) && is_token(c->d[p + 2])) emit(c, MK_PAT_JWT, s, p + 3);
}

// MARK: - AWS secret access keys

static inline int is_aws_secret(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '/' || b == '+'; }

/// Per byte: in the AWS secret class, and which token family (if any) it can start. A table
/// lookup instead of a chain of compares or a jump per byte (the windows of triggered detectors
/// are walked byte by byte). Built with the anchor table (`build_anchor_table`), before any
/// confirmer runs.
enum { B_AWS_SECRET = 1 };
static uint8_t byte_table[256];

// '[A-Za-z0-9/+]{40}' (no boundaries: every 40 bytes of the class end a match)
static void aws_secret(ctx_t *c) {
    size_t run = 0;
    for (size_t e = 1; e <= c->n; e++) {
        run = (byte_table[c->d[e - 1]] & B_AWS_SECRET) ? run + 1 : 0;
        if (run >= 40) emit(c, MK_PAT_AWS_SECRET, e - 40, e);
    }
}

// MARK: - Token prefixes (Stripe, GitHub, Slack, AWS key ids)

static inline int is_alnum(uint8_t b) { return is_alpha(b) || is_digit(b); }
static inline int has(const ctx_t *c, size_t i, const char *literal) {
    size_t n = strlen(literal);
    return i + n <= c->n && memcmp(c->d + i, literal, n) == 0;
}
/// Consecutive bytes from i that satisfy `in_class`.
static inline size_t span_of(const ctx_t *c, size_t i, int (*in_class)(uint8_t)) {
    size_t k = 0;
    while (i + k < c->n && in_class(c->d[i + k])) k++;
    return k;
}
static int is_alnum_c(uint8_t b) { return is_alnum(b); }
static int is_upper_alnum_c(uint8_t b) { return is_upper_alnum(b); }
static int is_digit_c(uint8_t b) { return is_digit(b); }
static int is_slack_tail(uint8_t b) { return is_alnum(b) || b == '-'; }
static int is_lower_hex(uint8_t b) { return is_digit(b) || (b >= 'a' && b <= 'f'); }

// '\b[sr]k_live_[A-Za-z0-9]{20,}' (every end from 20 bytes on)
static void stripe(ctx_t *c, size_t s) {
    if (!boundary(c, s) || !(has(c, s, "sk_live_") || has(c, s, "rk_live_"))) return;
    size_t run = span_of(c, s + 8, is_alnum_c);
    for (size_t k = 20; k <= run; k++) emit(c, MK_PAT_STRIPE, s, s + 8 + k);
}

// '\bgh[pousr]_[A-Za-z0-9]{36}\b' and '\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b'
static void github(ctx_t *c, size_t s) {
    if (!boundary(c, s)) return;
    if (has(c, s, "gh") && s + 3 < c->n && strchr("pousr", c->d[s + 2]) && c->d[s + 2] != 0 && c->d[s + 3] == '_'
        && span_of(c, s + 4, is_alnum_c) >= 36 && boundary(c, s + 40))
        emit(c, MK_PAT_GITHUB_CLASSIC, s, s + 40);
    if (has(c, s, "github_pat_") && span_of(c, s + 11, is_alnum_c) >= 22 && byte_is(c, s + 33, '_')
        && span_of(c, s + 34, is_alnum_c) >= 59 && boundary(c, s + 93))
        emit(c, MK_PAT_GITHUB_FINE, s, s + 93);
}

// '\bxox[abposre]-\d{6,15}-[A-Za-z0-9-]{10,}'
// '\bxapp-\d-[A-Z0-9]{6,15}-\d{6,15}-[a-f0-9]{32,80}'
static void slack(ctx_t *c, size_t s) {
    if (!boundary(c, s)) return;
    if (has(c, s, "xox") && s + 4 < c->n && c->d[s + 3] != 0 && strchr("abposre", c->d[s + 3]) && c->d[s + 4] == '-') {
        size_t digits_run = span_of(c, s + 5, is_digit_c);
        size_t q = s + 5 + digits_run;
        if (digits_run >= 6 && digits_run <= 15 && byte_is(c, q, '-')) {
            size_t tail = span_of(c, q + 1, is_slack_tail);
            for (size_t k = 10; k <= tail; k++) emit(c, MK_PAT_SLACK_TOKEN, s, q + 1 + k);
        }
    }
    if (has(c, s, "xapp-") && digit_at(c, s + 5) && byte_is(c, s + 6, '-')) {
        size_t id = span_of(c, s + 7, is_upper_alnum_c);
        size_t q = s + 7 + id;
        if (id >= 6 && id <= 15 && byte_is(c, q, '-')) {
            size_t number = span_of(c, q + 1, is_digit_c);
            size_t r = q + 1 + number;
            if (number >= 6 && number <= 15 && byte_is(c, r, '-')) {
                size_t tail = span_of(c, r + 1, is_lower_hex);
                for (size_t k = 32; k <= tail && k <= 80; k++) emit(c, MK_PAT_SLACK_APP, s, r + 1 + k);
            }
        }
    }
}

// 'https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}'
static void slack_webhook(ctx_t *c, size_t s) {
    static const char prefix[] = "https://hooks.slack.com/services/T";
    if (!has(c, s, prefix)) return;
    size_t q = s + sizeof(prefix) - 1;
    size_t team = span_of(c, q, is_upper_alnum_c);
    if (team < 6 || team > 12 || !byte_is(c, q + team, '/') || !byte_is(c, q + team + 1, 'B')) return;
    size_t r = q + team + 2;
    size_t bot = span_of(c, r, is_upper_alnum_c);
    if (bot < 6 || bot > 12 || !byte_is(c, r + bot, '/')) return;
    size_t t = r + bot + 1;
    size_t tail = span_of(c, t, is_alnum_c);
    for (size_t k = 20; k <= tail && k <= 32; k++) emit(c, MK_PAT_SLACK_WEBHOOK, s, t + k);
}

// '\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b'
static void aws_key_id(ctx_t *c, size_t s) {
    static const char *prefixes[] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA"};
    if (!boundary(c, s) || s + 20 > c->n) return;
    int known = 0;
    for (int k = 0; k < 10 && !known; k++) known = memcmp(c->d + s, prefixes[k], 4) == 0;
    if (known && span_of(c, s + 4, is_upper_alnum_c) >= 16 && boundary(c, s + 20)) emit(c, MK_PAT_AWS_KEY_ID, s, s + 20);
}

/// The offset of the first `b` at or after `from`, or the window's length.
static inline size_t next_byte(const ctx_t *c, size_t from, uint8_t b) {
    if (from >= c->n) return c->n;
    const uint8_t *found = memchr(c->d + from, b, c->n - from);
    return found ? (size_t)(found - c->d) : c->n;
}

/// Calls `at(c, p - back)` for every position p of `needle` in the window, jumping between the
/// occurrences of its byte `key` (a rarer byte than the first, where it has one).
static void each_literal(ctx_t *c, const char *needle, size_t key, size_t back, void (*at)(ctx_t *, size_t)) {
    const size_t length = strlen(needle);
    for (size_t q = next_byte(c, key, (uint8_t)needle[key]); q < c->n; q = next_byte(c, q + 1, (uint8_t)needle[key])) {
        size_t p = q - key;
        if (p + length > c->n || p < back || memcmp(c->d + p, needle, length) != 0) continue;
        at(c, p - back);
    }
}

/// The token-prefix families. Each is found by the literal every match holds, with memchr on one
/// of its bytes (a trigger window is mostly the match's reach on both sides, so a pass that looks
/// at every byte costs more than the few matches it finds). `emit` keeps the leftmost start per
/// end, so the order in which starts are visited does not matter.
static void token_prefixes(ctx_t *c, int stripes, int githubs, int slacks, int webhooks, int aws_ids) {
    if (stripes) each_literal(c, "k_live_", 1, 1, stripe);  // [sr]k_live_
    if (githubs) {
        // gh[pousr]_ (the '_' 3 bytes after the start) and github_pat_ (6 bytes after).
        for (size_t q = next_byte(c, 0, '_'); q < c->n; q = next_byte(c, q + 1, '_')) {
            if (q >= 3 && c->d[q - 3] == 'g' && c->d[q - 2] == 'h') github(c, q - 3);
            if (q >= 6 && memcmp(c->d + q - 6, "github", 6) == 0) github(c, q - 6);
        }
    }
    if (slacks) {
        // xox[abposre]- and xapp-: the '-' 4 bytes after the start.
        for (size_t q = next_byte(c, 0, '-'); q < c->n; q = next_byte(c, q + 1, '-')) {
            if (q >= 4 && c->d[q - 4] == 'x') slack(c, q - 4);
        }
    }
    if (webhooks) each_literal(c, "://hooks.slack.com/services/", 6, 5, slack_webhook);  // "https" before it
    if (aws_ids) {
        for (size_t q = next_byte(c, 0, 'A'); q < c->n; q = next_byte(c, q + 1, 'A')) aws_key_id(c, q);
    }
}

// MARK: - Credentials in URLs and connection strings, PEM private keys

/// `[^\s:/@"'<>]` and `[^\s@"'<>]`: the user and password of a URL.
static inline int is_url_user(uint8_t b) {
    return !(b == ' ' || (b >= '\t' && b <= '\r') || b == ':' || b == '/' || b == '@' || b == '"' || b == '\'' || b == '<' || b == '>');
}
static inline int is_url_password(uint8_t b) {
    return !(b == ' ' || (b >= '\t' && b <= '\r') || b == '@' || b == '"' || b == '\'' || b == '<' || b == '>');
}
static inline int is_scheme(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '+' || b == '.' || b == '-'; }

// '\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@"'<>]+:[^\s@"'<>]+@'
// Each "://" fixes the rest: the user is the run of user bytes after it (the class has no ':',
// so it ends at the first byte outside it, which must be ':'), the password the run after that
// (no '@' in the class, so it ends at the first byte outside it, which must be '@'). The leftmost
// start is the first letter at a word boundary at most 21 bytes back in the scheme bytes before it.
static void url_credentials(ctx_t *c) {
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t p = next_byte(c, 0, ':'); p + 3 <= n; p = next_byte(c, p + 1, ':')) {
        if (p + 3 > n || d[p + 1] != '/' || d[p + 2] != '/' || p < 2) continue;
        size_t q = p;
        while (q > 0 && p - (q - 1) <= 21 && is_scheme(d[q - 1])) q--;
        size_t s = (size_t)-1;
        for (size_t k = q; k + 2 <= p; k++) {
            if (is_alpha(d[k]) && boundary(c, k)) { s = k; break; }
        }
        if (s == (size_t)-1) continue;
        size_t u = p + 3;
        while (u < n && is_url_user(d[u])) u++;
        if (u == p + 3 || u >= n || d[u] != ':') continue;
        size_t w = u + 1;
        while (w < n && is_url_password(d[w])) w++;
        if (w == u + 1 || w >= n || d[w] != '@') continue;
        emit(c, MK_PAT_URL_CREDENTIALS, s, w + 1);
    }
}

/// `[^&;\s"'<>]`: a connection-string value byte.
static inline int is_conn_value(uint8_t b) {
    return !(b == '&' || b == ';' || b == ' ' || (b >= '\t' && b <= '\r') || b == '"' || b == '\'' || b == '<' || b == '>');
}

// '(?:[?&;]|\b)(?:password|passwd|pwd)=[^&;\s"'<>]+' (caseless)
// Each '=' after one of the names (at most one name ends there) starts a value; every byte of
// the value's run ends a match. The start is the '?', '&' or ';' before the name if there is
// one, else the name itself when a word boundary precedes it.
static void conn_password(ctx_t *c) {
    static const char *names[] = {"password", "passwd", "pwd"};
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t q = next_byte(c, 0, '='); q < n; q = next_byte(c, q + 1, '=')) {
        size_t name = (size_t)-1;
        for (int k = 0; k < 3 && name == (size_t)-1; k++) {
            size_t length = strlen(names[k]);
            if (q < length) continue;
            size_t i = 0;
            while (i < length && lower(d[q - length + i]) == (uint8_t)names[k][i]) i++;
            if (i == length) name = q - length;
        }
        if (name == (size_t)-1) continue;
        size_t s;
        if (name > 0 && (d[name - 1] == '?' || d[name - 1] == '&' || d[name - 1] == ';')) s = name - 1;
        else if (boundary(c, name)) s = name;
        else continue;
        for (size_t e = q + 1; e < n && is_conn_value(d[e]); e++) emit(c, MK_PAT_CONN_PASSWORD, s, e + 1);
    }
}

static inline int is_upper_digit(uint8_t b) { return (b >= 'A' && b <= 'Z') || is_digit(b); }

// '-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----'
// A word is a run of [A-Z0-9] ending at a space, so after "-----BEGIN " the positions after zero
// to three words are fixed; "PRIVATE KEY" may follow at each.
static void pem_private_key(ctx_t *c) {
    static const char begin[] = "-----BEGIN ";
    const size_t begin_length = sizeof(begin) - 1;
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t s = next_byte(c, 0, '-'); s + begin_length <= n; s = next_byte(c, s + 1, '-')) {
        if (s + begin_length > n || memcmp(d + s, begin, begin_length) != 0) continue;
        size_t p = s + begin_length;
        for (int words = 0; words <= 3; words++) {
            if (p + 11 <= n && memcmp(d + p, "PRIVATE KEY", 11) == 0) {
                size_t k = p + 11;
                if (k + 5 <= n && memcmp(d + k, "-----", 5) == 0) emit(c, MK_PAT_PEM_PRIVATE_KEY, s, k + 5);
                if (k + 11 <= n && memcmp(d + k, " BLOCK-----", 11) == 0) emit(c, MK_PAT_PEM_PRIVATE_KEY, s, k + 11);
            }
            if (words == 3) break;
            size_t w = p;
            while (w < n && w - p < 13 && is_upper_digit(d[w])) w++;
            if (w == p || w - p > 12 || w >= n || d[w] != ' ') break;
            p = w + 1;
        }
    }
}

// MARK: - Dates (of birth)

/// Whether the three bytes at i name a month (`Jan` … `Dec`, compared without case).
static int month_at(const ctx_t *c, size_t i) {
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    if (i + 3 > c->n) return 0;
    uint8_t a = lower(c->d[i]), b = lower(c->d[i + 1]), m = lower(c->d[i + 2]);
    for (int k = 0; k < 12; k++) {
        if (a == (uint8_t)months[3 * k] && b == (uint8_t)months[3 * k + 1] && m == (uint8_t)months[3 * k + 2]) return 1;
    }
    return 0;
}

/// `(?:19|20)\d{2}` at i.
static inline int year_at(const ctx_t *c, size_t i) {
    return i + 4 <= c->n && ((c->d[i] == '1' && c->d[i + 1] == '9') || (c->d[i] == '2' && c->d[i + 1] == '0'))
        && is_digit(c->d[i + 2]) && is_digit(c->d[i + 3]);
}

static inline int date_separator(const ctx_t *c, size_t i) {
    return i < c->n && (c->d[i] == '.' || c->d[i] == '/' || c->d[i] == '-');
}

/// After a month's three letters at m: `[a-z]{0,6}\.? ` (letters caseless). Returns the position
/// after the space, or 0 when the shape does not follow.
static size_t month_tail(const ctx_t *c, size_t m) {
    size_t p = m + 3;
    size_t letters = 0;
    while (p < c->n && is_alpha(c->d[p]) && letters <= 6) { p++; letters++; }
    if (letters > 6) return 0;
    if (byte_is(c, p, '.')) p++;
    if (!byte_is(c, p, ' ')) return 0;
    return p + 1;
}

// '\b(?:19|20)\d{2}-\d{2}-\d{2}\b'
// '\b\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d{2}\b'
// '\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.? \d{1,2}, (?:19|20)\d{2}\b' (caseless)
// '\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.? (?:19|20)\d{2}\b' (caseless)
// Every group is a whole run of its class (a digit group is followed by a separator, a space or
// a comma; the letters by '.' or ' '), so a start at a word boundary fixes the one end.
static void dates(ctx_t *c, int iso, int numeric, int month_first, int day_first) {
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t s = 0; s < n; s++) {
        uint8_t b = d[s];
        if (!is_digit(b) && !is_alpha(b)) continue;
        if (!boundary(c, s)) continue;
        if (is_digit(b)) {
            if (iso && year_at(c, s) && byte_is(c, s + 4, '-') && digits(c, s + 5, 2) && byte_is(c, s + 7, '-')
                && digits(c, s + 8, 2) && boundary(c, s + 10)) {
                emit(c, MK_PAT_DOB_ISO, s, s + 10);
            }
            size_t first = digit_span(c, s);
            if (first > 2) continue;
            if (numeric && date_separator(c, s + first)) {
                size_t p = s + first + 1;
                size_t second = digit_span(c, p);
                if (second >= 1 && second <= 2 && date_separator(c, p + second) && year_at(c, p + second + 1)
                    && boundary(c, p + second + 5)) {
                    emit(c, MK_PAT_DOB_NUMERIC, s, p + second + 5);
                }
            }
            if (day_first && byte_is(c, s + first, ' ') && month_at(c, s + first + 1)) {
                size_t p = month_tail(c, s + first + 1);
                if (p && year_at(c, p) && boundary(c, p + 4)) emit(c, MK_PAT_DOB_DAY_FIRST, s, p + 4);
            }
        } else if (month_first && month_at(c, s)) {
            size_t p = month_tail(c, s);
            if (!p) continue;
            size_t day = digit_span(c, p);
            if (day < 1 || day > 2 || !byte_is(c, p + day, ',') || !byte_is(c, p + day + 1, ' ')) continue;
            size_t y = p + day + 2;
            if (year_at(c, y) && boundary(c, y + 4)) emit(c, MK_PAT_DOB_MONTH_FIRST, s, y + 4);
        }
    }
}

// MARK: - Kubernetes Secret data

static inline int is_base64(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '+' || b == '/'; }
static inline int is_k8s_key(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '.' || b == '_' || b == '-'; }

// '^[ ]{2,12}[A-Za-z0-9._-]+: (?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?[ ]*\r?$'
// '^[ ]{2,12}[A-Za-z0-9._-]+: [A-Za-z0-9+/]{129}'
// At each line start (multi-line `^`: the window's start or after '\n') the indentation is the
// whole run of spaces (the key has none), the key the whole run of key bytes up to ": ". The
// first pattern needs the whole base64 run (its length fixes the padding), then blanks, an
// optional '\r' and the end of the line: one end. The second ends 129 bytes into the value.
static void k8s_secret(ctx_t *c, int value, int long_value) {
    const uint8_t *d = c->d;
    size_t n = c->n;
    size_t line = 0;
    for (;;) {
        size_t p = line;
        while (p < n && d[p] == ' ') p++;
        size_t indent = p - line;
        if (indent >= 2 && indent <= 12) {
            size_t k = p;
            while (k < n && is_k8s_key(d[k])) k++;
            if (k > p && k + 2 <= n && d[k] == ':' && d[k + 1] == ' ') {
                size_t v = k + 2;
                size_t r = v;
                while (r < n && is_base64(d[r])) r++;
                size_t run = r - v;
                if (long_value && run >= 129) emit(c, MK_PAT_K8S_SECRET_LONG, line, v + 129);
                if (value && run >= 4) {
                    size_t e = r;
                    int ok = 0;
                    if (run % 4 == 0) ok = 1;
                    else if (run % 4 == 2 && run >= 6 && e + 2 <= n && d[e] == '=' && d[e + 1] == '=') { ok = 1; e += 2; }
                    else if (run % 4 == 3 && run >= 7 && e < n && d[e] == '=') { ok = 1; e += 1; }
                    if (ok) {
                        while (e < n && d[e] == ' ') e++;
                        if (e < n && d[e] == '\r') e++;
                        if (e == n || d[e] == '\n') emit(c, MK_PAT_K8S_SECRET_VALUE, line, e);
                    }
                }
            }
        }
        line = next_byte(c, line, '\n') + 1;
        if (line > n) return;
    }
}

// MARK: - Passwords in files and command lines

/// `[ \t\r\n]`.
static inline int is_blank_or_newline(uint8_t b) { return b == ' ' || b == '\t' || b == '\r' || b == '\n'; }
static inline int is_nonspace(uint8_t b) { return !is_space(b); }
static inline int is_pgpass_host(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '.' || b == '_' || b == '*' || b == '-'; }
static inline int is_pgpass_field(uint8_t b) { return b != ':' && !is_space(b); }
static inline int is_csv_field(uint8_t b) { return b != ',' && b != '\r' && b != '\n'; }

// '^[A-Za-z0-9._*-]+:(?:\d{1,5}|\*):[^:\s]+:[^:\s]+:\S+$'
// At each line start the host, database and user are whole runs of classes without ':', the
// port a whole digit run (or '*'), and the password the rest of the line (no blank in it): one end.
static void pgpass(ctx_t *c) {
    const uint8_t *d = c->d;
    size_t n = c->n;
    size_t line = 0;
    for (;;) {
        size_t p = line + span_of(c, line, is_pgpass_host);
        if (p > line && byte_is(c, p, ':')) {
            p++;
            size_t port = byte_is(c, p, '*') ? 1 : digit_span(c, p);
            if (port >= 1 && (byte_is(c, p, '*') || port <= 5) && byte_is(c, p + port, ':')) {
                p += port + 1;
                size_t database = span_of(c, p, is_pgpass_field);
                if (database > 0 && byte_is(c, p + database, ':')) {
                    p += database + 1;
                    size_t user = span_of(c, p, is_pgpass_field);
                    if (user > 0 && byte_is(c, p + user, ':')) {
                        p += user + 1;
                        size_t password = span_of(c, p, is_nonspace);
                        size_t e = p + password;
                        if (password > 0 && (e == n || d[e] == '\n')) emit(c, MK_PAT_PGPASS, line, e);
                    }
                }
            }
        }
        line = next_byte(c, line, '\n') + 1;
        if (line > n) return;
    }
}

/// From p (after "password"): `[ \t]+\S+`, every end.
static void netrc_tail(ctx_t *c, int pattern, size_t s, size_t p) {
    size_t blanks = span_of(c, p, is_blank);
    if (blanks == 0) return;
    size_t v = p + blanks;
    size_t value = span_of(c, v, is_nonspace);
    for (size_t k = 1; k <= value; k++) emit(c, pattern, s, v + k);
}

// '\b(?:login|account)[ \t\r\n]+\S+[ \t\r\n]+password[ \t]+\S+'
// '\bmachine[ \t]+\S+[ \t\r\n]+password[ \t]+\S+'
// After the keyword every group is a whole run (blanks, a token, blanks, "password", blanks);
// every byte of the last token ends a match.
static void netrc(ctx_t *c, int logins, int machines) {
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t s = 0; s < n; s++) {
        uint8_t b = d[s];
        size_t keyword = 0;
        int pattern = 0;
        int (*first_blank)(uint8_t) = is_blank_or_newline;
        if (logins && b == 'l' && s + 5 <= n && memcmp(d + s, "login", 5) == 0) { keyword = 5; pattern = MK_PAT_NETRC_LOGIN; }
        else if (logins && b == 'a' && s + 7 <= n && memcmp(d + s, "account", 7) == 0) { keyword = 7; pattern = MK_PAT_NETRC_LOGIN; }
        else if (machines && b == 'm' && s + 7 <= n && memcmp(d + s, "machine", 7) == 0) {
            keyword = 7;
            pattern = MK_PAT_NETRC_MACHINE;
            first_blank = is_blank;
        }
        if (!keyword || !boundary(c, s)) continue;
        size_t p = s + keyword;
        size_t blanks = span_of(c, p, first_blank);
        if (blanks == 0) continue;
        p += blanks;
        size_t token = span_of(c, p, is_nonspace);
        if (token == 0) continue;
        p += token;
        size_t gap = span_of(c, p, is_blank_or_newline);
        if (gap == 0) continue;
        p += gap;
        if (p + 8 > n || memcmp(d + p, "password", 8) != 0) continue;
        netrc_tail(c, pattern, s, p + 8);
    }
}

// ',[^,\r\n]+,(?:AKIA|ASIA)[A-Z0-9]{16}\b'
// ',[^,\r\n]+,https://\d{12}\.signin\.aws\.amazon\.com'
// The column before the key is a whole run without ',' (or a line break): its start is fixed by
// the comma before it.
static void aws_csv(ctx_t *c, int keys, int consoles) {
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t q = next_byte(c, 1, ','); q < n; q = next_byte(c, q + 1, ',')) {
        size_t k = q + 1;
        int key = keys && k + 20 <= n && (memcmp(d + k, "AKIA", 4) == 0 || memcmp(d + k, "ASIA", 4) == 0)
            && span_of(c, k + 4, is_upper_alnum_c) >= 16 && boundary(c, k + 20);
        int console = consoles && k + 42 <= n && memcmp(d + k, "https://", 8) == 0 && digits(c, k + 8, 12)
            && memcmp(d + k + 20, ".signin.aws.amazon.com", 22) == 0;
        if (!key && !console) continue;
        size_t f = q;
        while (f > 0 && is_csv_field(d[f - 1])) f--;
        if (f == q || f == 0 || d[f - 1] != ',') continue;
        if (key) emit(c, MK_PAT_AWS_CSV_KEY, f - 1, k + 20);
        if (console) emit(c, MK_PAT_AWS_CSV_CONSOLE, f - 1, k + 42);
    }
}

/// `[^\s"']` and `[^\s"'<>]`: flag values (the second also an unquoted `value=` in HTML).
static inline int is_mysql_value(uint8_t b) { return !is_space(b) && b != '"' && b != '\''; }
static inline int is_flag_value(uint8_t b) { return !is_space(b) && b != '"' && b != '\'' && b != '<' && b != '>'; }

// '\bmysql(?:dump|admin|import|check|sh)?\b[^\r\n]*[ \t]-p["']?[^\s"']{4,}'
// The start is the leftmost client name on the line before the flag; the value is a whole run
// after the optional quote, and each of its bytes from the fourth on ends a match.
static void mysql_flag(ctx_t *c) {
    static const char *suffixes[] = {"dump", "admin", "import", "check", "sh"};
    const uint8_t *d = c->d;
    size_t n = c->n;
    size_t start = (size_t)-1;  // the leftmost client name on this line
    for (size_t i = 0; i < n; i++) {
        uint8_t b = d[i];
        if (b == '\r' || b == '\n') { start = (size_t)-1; continue; }
        if (b == 'm' && start == (size_t)-1 && i + 5 <= n && memcmp(d + i, "mysql", 5) == 0 && boundary(c, i)) {
            int ok = boundary(c, i + 5);
            for (int k = 0; k < 5 && !ok; k++) {
                size_t length = strlen(suffixes[k]);
                ok = i + 5 + length <= n && memcmp(d + i + 5, suffixes[k], length) == 0 && boundary(c, i + 5 + length);
            }
            if (ok) start = i;
            continue;
        }
        if (start != (size_t)-1 && is_blank(b) && byte_is(c, i + 1, '-') && byte_is(c, i + 2, 'p')) {
            size_t v = i + 3;
            if (v < n && is_quote(d[v])) v++;
            size_t value = span_of(c, v, is_mysql_value);
            for (size_t k = 4; k <= value; k++) emit(c, MK_PAT_MYSQL_FLAG, start, v + k);
        }
    }
}

// '(?:^|[ \t"'])--?(?:password|passwd|pass|requirepass|masterauth|db-password|admin-password)(?:=|[ \t]+)["']?[^\s"'<>]{6,}'
// At a dash after a blank or quote (the start) or at a line start: one or two dashes, a name
// followed by '=' or blanks (at most one name fits), an optional quote, then a whole value run
// whose bytes from the sixth on each end a match.
static void password_flag(ctx_t *c) {
    static const char *names[] = {"password", "passwd", "pass", "requirepass", "masterauth", "db-password", "admin-password"};
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t m = next_byte(c, 0, '-'); m < n; m = next_byte(c, m + 1, '-')) {
        size_t s;
        if (m > 0 && (is_blank(d[m - 1]) || is_quote(d[m - 1]))) s = m - 1;
        else if (m == 0 || d[m - 1] == '\n') s = m;
        else continue;
        size_t p = m + (byte_is(c, m + 1, '-') ? 2 : 1);
        for (int k = 0; k < 7; k++) {
            size_t length = strlen(names[k]);
            if (p + length > n || memcmp(d + p, names[k], length) != 0) continue;
            size_t q = p + length;
            if (byte_is(c, q, '=')) q++;
            else {
                size_t blanks = span_of(c, q, is_blank);
                if (blanks == 0) continue;
                q += blanks;
            }
            if (q < n && is_quote(d[q])) q++;
            size_t value = span_of(c, q, is_flag_value);
            for (size_t e = 6; e <= value; e++) emit(c, MK_PAT_PASSWORD_FLAG, s, q + e);
        }
    }
}

// MARK: - Passwords in markup (caseless)

/// Whether `word` (lower case) is at i, compared without case.
static inline int word_caseless_at(const ctx_t *c, size_t i, const char *word, size_t length) {
    if (i + length > c->n) return 0;
    for (size_t k = 0; k < length; k++) if (lower(c->d[i + k]) != (uint8_t)word[k]) return 0;
    return 1;
}
#define WORD_AT(c, i, w) word_caseless_at((c), (i), (w), sizeof(w) - 1)

static inline int is_markup(uint8_t b) { return b != '<' && b != '>'; }
static inline int is_element_text(uint8_t b) { return b != '<' && b != '>' && b != '\r' && b != '\n'; }
static inline int is_xml_name(uint8_t b) { return is_alpha(b) || is_digit(b) || b == '_'; }
static inline int is_xml_prefix(uint8_t b) { return is_xml_name(b) || b == '.' || b == '-'; }
static inline int is_attribute_text(uint8_t b) { return b != '"' && b != '\'' && b != '<' && b != '>'; }

/// From p (after an element's '>'): `[^<>\r\n]{1,limit}</` (limit 0: no limit). The end, or 0.
static size_t element_text_end(const ctx_t *c, size_t p, size_t limit) {
    size_t text = span_of(c, p, is_element_text);
    if (text == 0 || (limit && text > limit)) return 0;
    size_t e = p + text;
    return byte_is(c, e, '<') && byte_is(c, e + 1, '/') ? e + 2 : 0;
}

// '<(?:[A-Za-z][A-Za-z0-9_.-]{0,31}:)?[A-Za-z0-9_]{0,32}(?:password|passwd|passphrase|pass|pwd|secret|secretkey|apikey|api_key|sessiontoken|accesstoken|authtoken)(?:[ \t][^<>]{0,300})?>[^<>\r\n]{1,256}</'
// After '<' the optional prefix is the whole run of prefix bytes up to ':', the name the whole
// run of name bytes (a blank or '>' follows it) and must end in a key word; the tag ends at its
// first '>' and the text at its first '<': one end per '<'.
static void xml_password(ctx_t *c) {
    static const char *words[] = {"password", "passwd", "passphrase", "pass", "pwd", "secret", "secretkey", "apikey", "api_key",
                                  "sessiontoken", "accesstoken", "authtoken"};
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t s = next_byte(c, 0, '<'); s < n; s = next_byte(c, s + 1, '<')) {
        size_t q = s + 1;
        size_t prefix = span_of(c, q, is_xml_prefix);
        if (prefix >= 1 && prefix <= 32 && is_alpha(d[q]) && byte_is(c, q + prefix, ':')) q += prefix + 1;
        size_t name = span_of(c, q, is_xml_name);
        int named = 0;
        for (int k = 0; k < 12 && !named; k++) {
            size_t length = strlen(words[k]);
            named = name >= length && name - length <= 32 && word_caseless_at(c, q + name - length, words[k], length);
        }
        if (!named) continue;
        size_t t = q + name;
        size_t close;
        if (byte_is(c, t, '>')) close = t;
        else if (t < n && is_blank(d[t])) {
            size_t attributes = span_of(c, t + 1, is_markup);
            if (attributes > 300 || !byte_is(c, t + 1 + attributes, '>')) continue;
            close = t + 1 + attributes;
        } else continue;
        size_t e = element_text_end(c, close + 1, 256);
        if (e) emit(c, MK_PAT_XML_PASSWORD, s, e);
    }
}

/// `\btype=["']?password\b` at i: the end, or 0.
static size_t password_type_at(const ctx_t *c, size_t i) {
    if (!WORD_AT(c, i, "type=") || !boundary(c, i)) return 0;
    size_t p = i + 5;
    if (p < c->n && is_quote(c->d[p])) p++;
    return WORD_AT(c, p, "password") && boundary(c, p + 8) ? p + 8 : 0;
}

static int is_not_dquote_markup(uint8_t b) { return b != '"' && b != '<' && b != '>'; }
static int is_not_squote_markup(uint8_t b) { return b != '\'' && b != '<' && b != '>'; }

// '<input\b[^<>]{0,200}\btype=["']?password\b[^<>]{0,200}\bvalue=(?:"[^"<>]{1,128}|'[^'<>]{1,128}|[^\s"'<>]{1,128})'
// '<input\b[^<>]*\bvalue="[^"<>]+"[^<>]*\btype=["']?password\b'
// Within one tag (from "<input" to its first '<' or '>'), every `type=password` and every
// `value=` are found in order; the distance rules pick the pairs (for a `value=`, the nearest
// `type=password` before it is the one to test). The start is "<input" for all.
static void html_inputs(ctx_t *c, int type_first, int value_first) {
    const uint8_t *d = c->d;
    size_t n = c->n;
    for (size_t s = next_byte(c, 0, '<'); s < n; s = next_byte(c, s + 1, '<')) {
        if (!WORD_AT(c, s + 1, "input") || !boundary(c, s + 6)) continue;
        size_t a = s + 6;
        size_t tag_end = a + span_of(c, a, is_markup);
        size_t type_end = 0;  // the end of the last `type=password` within 200 bytes of "<input", 0 when none
        size_t first_quoted_value = (size_t)-1;  // one past the closing quote of the first value="…"
        for (size_t i = a; i < tag_end; i++) {
            uint8_t b = lower(d[i]);
            if (b == 't') {
                size_t e = password_type_at(c, i);
                if (e && e <= tag_end) {
                    if (value_first && first_quoted_value != (size_t)-1 && first_quoted_value <= i) {
                        emit(c, MK_PAT_HTML_INPUT_VALUE_FIRST, s, e);
                    }
                    if (type_first && i - a <= 200) type_end = e;
                }
            } else if (b == 'v' && WORD_AT(c, i, "value=") && boundary(c, i)) {
                size_t w = i + 6;
                if (value_first && first_quoted_value == (size_t)-1 && byte_is(c, w, '"')) {
                    size_t text = span_of(c, w + 1, is_not_dquote_markup);
                    if (text > 0 && byte_is(c, w + 1 + text, '"')) first_quoted_value = w + 2 + text;
                }
                if (!type_first) continue;
                if (type_end == 0 || i - type_end > 200) continue;
                size_t v = w;
                int (*member)(uint8_t) = is_flag_value;
                if (byte_is(c, w, '"')) { v = w + 1; member = is_not_dquote_markup; }
                else if (byte_is(c, w, '\'')) { v = w + 1; member = is_not_squote_markup; }
                size_t value = span_of(c, v, member);
                for (size_t k = 1; k <= value && k <= 128; k++) emit(c, MK_PAT_HTML_INPUT, s, v + k);
            }
        }
    }
}

/// `\b(?:key|name)=["'][^"'<>]*(?:words)[^"'<>]*["']` at s: the position after the closing
/// quote, or 0.
static size_t keyed_attribute_at(const ctx_t *c, size_t s, const char *const *words, int count) {
    size_t p;
    if (WORD_AT(c, s, "key=")) p = s + 4;
    else if (WORD_AT(c, s, "name=")) p = s + 5;
    else return 0;
    if (!boundary(c, s) || p >= c->n || !is_quote(c->d[p])) return 0;
    p++;
    size_t text = span_of(c, p, is_attribute_text);
    if (p + text >= c->n || !is_quote(c->d[p + text])) return 0;
    for (int k = 0; k < count; k++) {
        size_t length = strlen(words[k]);
        for (size_t i = p; i + length <= p + text; i++) {
            if (word_caseless_at(c, i, words[k], length)) return p + text + 1;
        }
    }
    return 0;
}

static int is_not_dquote_line(uint8_t b) { return b != '"' && b != '<' && b != '>' && b != '\r' && b != '\n'; }
static int is_not_squote_line(uint8_t b) { return b != '\'' && b != '<' && b != '>' && b != '\r' && b != '\n'; }

// '\b(?:key|name)=["'][^"'<>]*(?:password|passwd|pwd|secret|apikey|api_key|api-key)[^"'<>]*["'][ \t]+value=(?:"[^"<>\r\n]+|'[^'<>\r\n]+)'
// '\b(?:key|name)=["'][^"'<>]*(?:password|passwd|pwd|secret)[^"'<>]*["'][^<>]*>[^<>\r\n]+</'
// The attribute's text is a whole run between its quotes; then blanks and `value=` (every byte
// of the quoted value ends a match), or the rest of the tag and the element's text.
static void keyed_passwords(ctx_t *c, int values, int elements) {
    static const char *value_words[] = {"password", "passwd", "pwd", "secret", "apikey", "api_key", "api-key"};
    static const char *element_words[] = {"password", "passwd", "pwd", "secret"};
    size_t n = c->n;
    for (size_t q = next_byte(c, 0, '='); q < n; q = next_byte(c, q + 1, '=')) {
        size_t start;
        if (q >= 3 && WORD_AT(c, q - 3, "key")) start = q - 3;
        else if (q >= 4 && WORD_AT(c, q - 4, "name")) start = q - 4;
        else continue;
        if (values) {
            size_t p = keyed_attribute_at(c, start, value_words, 7);
            size_t blanks = p ? span_of(c, p, is_blank) : 0;
            if (blanks && WORD_AT(c, p + blanks, "value=")) {
                size_t w = p + blanks + 6;
                int (*member)(uint8_t) = NULL;
                if (byte_is(c, w, '"')) member = is_not_dquote_line;
                else if (byte_is(c, w, '\'')) member = is_not_squote_line;
                if (member) {
                    size_t value = span_of(c, w + 1, member);
                    for (size_t k = 1; k <= value; k++) emit(c, MK_PAT_KEYED_VALUE, start, w + 1 + k);
                }
            }
        }
        if (elements) {
            size_t p = keyed_attribute_at(c, start, element_words, 4);
            if (p) {
                size_t close = p + span_of(c, p, is_markup);
                if (byte_is(c, close, '>')) {
                    size_t e = element_text_end(c, close + 1, 0);
                    if (e) emit(c, MK_PAT_KEYED_ELEMENT, start, e);
                }
            }
        }
    }
}

// MARK: - Secret assignments

// The four patterns below are caseless (the key names; the rest has no letters). In a match one
// ':' or '=' is the separator `[:=]` (a value may hold more), and that byte alone fixes both
// halves of the match:
//  * before it, the blanks (`[ \t]*`, or `\s{0,3}`), optional quote and optional backslash are
//    taken whole, since every key name ends in a letter: one name end per separator, and the
//    starts are those of the names ending there (`(?:\b|_)` moves a start onto a '_');
//  * after it, the blanks are taken whole (a value byte is never a blank) and the value is the
//    maximal run of `[^\s"',;]` from there (or the run up to the closing quote): one end.
// Any such name with any such value is a match, so the confirmers start at every ':' and '=',
// take the leftmost name start and emit it with the end: every end gets its leftmost start.

/// `[^\s"',;]`.
static inline int is_value(uint8_t b) {
    return b > ' ' ? (b != '"' && b != '\'' && b != ',' && b != ';') : !is_space(b);
}

typedef struct {
    const char *word;   ///< lowercase
    uint8_t length;
    uint8_t bounded;    ///< preceded by `(?:\b|_)`
} keyword_t;

/// The key names by their last two letters (the first filter), at most NAMES_PER_END each.
enum { END_RD, END_WD, END_ET, END_EY, END_EN, END_SS, END_SE, END_COUNT, NAMES_PER_END = 7 };

#define KW(w, b) {w, (uint8_t)(sizeof(w) - 1), b}
// (?:password|passwd|secret|secret_?key|client_?secret|api_?key|private_?key|(?:\b|_)(?:pwd|pass|access_?token|auth_?token|refresh_?token|token))
static const keyword_t assign_words[END_COUNT][NAMES_PER_END] = {
    [END_RD] = {KW("password", 0)},
    [END_WD] = {KW("passwd", 0), KW("pwd", 1)},
    [END_ET] = {KW("secret", 0), KW("client_secret", 0), KW("clientsecret", 0)},
    [END_EY] = {KW("secret_key", 0), KW("secretkey", 0), KW("api_key", 0), KW("apikey", 0), KW("private_key", 0),
                KW("privatekey", 0)},
    [END_EN] = {KW("access_token", 1), KW("accesstoken", 1), KW("auth_token", 1), KW("authtoken", 1),
                KW("refresh_token", 1), KW("refreshtoken", 1), KW("token", 1)},
    [END_SS] = {KW("pass", 1)},
};
// (?:password|passwd|passphrase|secret)
static const keyword_t quoted_words[END_COUNT][NAMES_PER_END] = {
    [END_RD] = {KW("password", 0)},
    [END_WD] = {KW("passwd", 0)},
    [END_ET] = {KW("secret", 0)},
    [END_SE] = {KW("passphrase", 0)},
};
// (?:\b|_)(?:password|passwd|pwd|secret|secret_key|client_secret|api_?key|access_token|auth_token|private_key|token)
static const keyword_t long_words[END_COUNT][NAMES_PER_END] = {
    [END_RD] = {KW("password", 1)},
    [END_WD] = {KW("passwd", 1), KW("pwd", 1)},
    [END_ET] = {KW("secret", 1), KW("client_secret", 1)},
    [END_EY] = {KW("secret_key", 1), KW("api_key", 1), KW("apikey", 1), KW("private_key", 1)},
    [END_EN] = {KW("access_token", 1), KW("auth_token", 1), KW("token", 1)},
};
#undef KW

/// The leftmost start, plus one, of a key name of `words` ending at `k` (caseless), 0 when none.
static size_t keyword_start(const ctx_t *c, size_t k, const keyword_t words[END_COUNT][NAMES_PER_END]) {
    if (k < 3) return 0;  // the shortest name is "pwd"
    uint8_t last = lower(c->d[k - 1]), before = lower(c->d[k - 2]);
    int end;
    switch (last) {
    case 'd': if (before == 'r') end = END_RD; else if (before == 'w') end = END_WD; else return 0; break;
    case 't': if (before != 'e') return 0; end = END_ET; break;
    case 'y': if (before != 'e') return 0; end = END_EY; break;
    case 'n': if (before != 'e') return 0; end = END_EN; break;
    case 's': if (before != 's') return 0; end = END_SS; break;
    case 'e': if (before != 's') return 0; end = END_SE; break;
    default: return 0;
    }
    size_t best = 0;
    for (const keyword_t *w = words[end]; w < words[end] + NAMES_PER_END && w->length != 0; w++) {
        size_t length = w->length;
        if (length > k) continue;
        size_t ks = k - length;
        size_t i = 0;
        while (i + 2 < length && lower(c->d[ks + i]) == (uint8_t)w->word[i]) i++;
        if (i + 2 < length) continue;
        size_t s = ks;
        if (w->bounded && !boundary(c, ks)) {
            if (ks == 0 || c->d[ks - 1] != '_') continue;
            s = ks - 1;
        }
        if (best == 0 || s + 1 < best) best = s + 1;
    }
    return best;
}

/// The last maximal run of value bytes measured: `[lo, hi)` are value bytes, `hi` is not one
/// (or is the window's end). Separators inside one value (`token=token=...`) share it.
typedef struct { size_t lo, hi; } value_run;

/// The end of the maximal run of value bytes from `v`.
static inline size_t value_run_end(const ctx_t *c, value_run *run, size_t v) {
    if (v >= run->lo && v <= run->hi) return run->hi;
    size_t q = v;
    while (q < c->n && is_value(c->d[q])) q++;
    run->lo = v;
    run->hi = q;
    return q;
}

// '(?:password|passwd|secret|secret_?key|client_?secret|api_?key|private_?key|(?:\b|_)(?:pwd|pass|access_?token|auth_?token|refresh_?token|token))\\?["']?[ \t]*[:=][ \t]*\\?["']?[^\s"',;]{6,}(?:[ \t"',;]|\r?$)'
// `sp` is the separator, `b` the first of the blanks before it.
static void secret_assign(ctx_t *c, size_t sp, size_t b, value_run *run) {
    size_t k = b;
    if (k > 0 && is_quote(c->d[k - 1])) k--;
    if (k > 0 && c->d[k - 1] == '\\') k--;
    size_t start = keyword_start(c, k, assign_words);
    if (start == 0) return;
    size_t t = sp + 1;
    while (t < c->n && is_blank(c->d[t])) t++;
    // The value starts after the optional backslash and quote; an untaken backslash is a value byte.
    size_t starts[2];
    int count = 0;
    size_t u = t;
    if (byte_is(c, u, '\\')) starts[count++] = u++;
    if (u < c->n && is_quote(c->d[u])) u++;
    starts[count++] = u;
    for (int i = 0; i < count; i++) {
        size_t v = starts[i];
        size_t q = value_run_end(c, run, v);
        if (q - v < 6) continue;
        size_t end;
        if (q == c->n || c->d[q] == '\n') end = q;  // `$`
        else if (is_blank(c->d[q]) || is_quote(c->d[q]) || c->d[q] == ',' || c->d[q] == ';') end = q + 1;
        else if (c->d[q] == '\r' && (q + 1 == c->n || c->d[q + 1] == '\n')) end = q + 1;  // `\r$`
        else continue;
        emit(c, MK_PAT_SECRET_ASSIGN, start - 1, end);
    }
}

// '(?:password|passwd|passphrase|secret)["']?[ \t]*[:=][ \t]*"[^"\r\n]*[ ,;][^"\r\n]*"'
// '(?:password|passwd|passphrase|secret)["']?[ \t]*[:=][ \t]*'[^'\r\n]*[ ,;][^'\r\n]*''
static void secret_assign_quoted(ctx_t *c, size_t sp, size_t b) {
    size_t t = sp + 1;
    while (t < c->n && is_blank(c->d[t])) t++;
    if (t >= c->n || !is_quote(c->d[t])) return;
    uint8_t quote = c->d[t];
    int pattern = quote == '"' ? MK_PAT_SECRET_ASSIGN_DQUOTED : MK_PAT_SECRET_ASSIGN_SQUOTED;
    if (c->slot_of[pattern] == 0xFF) return;
    size_t k = b;
    if (k > 0 && is_quote(c->d[k - 1])) k--;
    size_t start = keyword_start(c, k, quoted_words);
    if (start == 0) return;
    int spaced = 0;
    for (size_t p = t + 1; p < c->n; p++) {
        uint8_t ch = c->d[p];
        if (ch == quote) {
            if (spaced) emit(c, pattern, start - 1, p + 1);
            return;
        }
        if (ch == '\r' || ch == '\n') return;
        if (ch == ' ' || ch == ',' || ch == ';') spaced = 1;
    }
}

// '(?:\b|_)(?:password|passwd|pwd|secret|secret_key|client_secret|api_?key|access_token|auth_token|private_key|token)["']?\s{0,3}[:=]\s{0,3}["']?[^\s"',;]{64}'
static void secret_assign_long(ctx_t *c, size_t sp, value_run *run) {
    size_t k = sp;
    while (k > 0 && sp - k <= 3 && is_space(c->d[k - 1])) k--;
    if (sp - k > 3) return;
    if (k > 0 && is_quote(c->d[k - 1])) k--;
    size_t start = keyword_start(c, k, long_words);
    if (start == 0) return;
    size_t v = sp + 1;
    while (v < c->n && v - (sp + 1) <= 3 && is_space(c->d[v])) v++;
    if (v - (sp + 1) > 3) return;
    if (v < c->n && is_quote(c->d[v])) v++;
    if (value_run_end(c, run, v) - v >= 64) emit(c, MK_PAT_SECRET_ASSIGN_LONG, start - 1, v + 64);
}

static inline void secret_at(ctx_t *c, size_t sp, int assign, int quoted, int long_form, value_run *run) {
    size_t b = sp;
    while (b > 0 && is_blank(c->d[b - 1])) b--;
    if (assign) secret_assign(c, sp, b, run);
    if (quoted) secret_assign_quoted(c, sp, b);
    if (long_form) secret_assign_long(c, sp, run);
}

/// The eight bytes from `p`, the first in the low byte.
static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/// The high bit of every byte of `x` equal to `b`, exactly (no carries between bytes).
static inline uint64_t byte_mask(uint64_t x, uint8_t b) {
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7Full;
    uint64_t v = x ^ (0x0101010101010101ull * b);
    return ~(((v & low7) + low7) | v | low7);
}

/// Confirms the enabled secret-assignment patterns at every ':' and '=' of the window, found
/// sixteen bytes at a time.
static void secret_scan(ctx_t *c, int assign, int quoted, int long_form) {
    value_run run = {1, 0};
    size_t i = 0;
    for (; i + 16 <= c->n; i += 16) {
        uint64_t x = load_le64(c->d + i), y = load_le64(c->d + i + 8);
        uint64_t low = byte_mask(x, ':') | byte_mask(x, '='), high = byte_mask(y, ':') | byte_mask(y, '=');
        if (!(low | high)) continue;
        for (; low; low &= low - 1)
            secret_at(c, i + (size_t)(__builtin_ctzll(low) >> 3), assign, quoted, long_form, &run);
        for (; high; high &= high - 1)
            secret_at(c, i + 8 + (size_t)(__builtin_ctzll(high) >> 3), assign, quoted, long_form, &run);
    }
    for (; i < c->n; i++)
        if (c->d[i] == ':' || c->d[i] == '=') secret_at(c, i, assign, quoted, long_form, &run);
}

// MARK: - IPv6

static inline int is_hex(uint8_t b) { return is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }
/// Number of consecutive hex digits from i, counted up to 5 (5 means "more than a group holds").
static inline size_t hex_span5(const ctx_t *c, size_t i) {
    size_t k = 0;
    while (k < 5 && i + k < c->n && is_hex(c->d[i + k])) k++;
    return k;
}

/// `(?:\d{1,3}\.){3}\d{1,3}\b` from p (a digit run starts there: the byte before is ':' or '.'):
/// its end, or 0 when it does not match. Each run is whole (the next byte is '.' or not a word byte).
static size_t dotted_quad(const ctx_t *c, size_t p) {
    for (int group = 0; group < 4; group++) {
        size_t run = digit_span(c, p);
        if (run < 1 || run > 3) return 0;
        p += run;
        if (group < 3) {
            if (!byte_is(c, p, '.')) return 0;
            p++;
        }
    }
    return boundary(c, p) ? p : 0;
}

/// The three hex forms from p, where a hex run starts (after `\b` or after `IPv6:`), reported
/// with start `start` under `full`, `compressed` and `tail`:
///   `(?:h{1,4}:){7}h{1,4}\b`, `(?:h{1,4}:){1,6}(?::h{1,4}){1,6}\b`, `(?:h{1,4}:){6}(?:\d{1,3}\.){3}\d{1,3}\b`
/// with h = [0-9A-Fa-f]. A group `h{1,4}:` is a whole hex run of 1 to 4 digits (the run starts
/// after ':' or a non-word byte and a hex digit is not ':'), so the groups from p are forced;
/// likewise a last group `h{1,4}\b` is a whole run followed by a non-word byte.
static void ipv6_forms(ctx_t *c, size_t start, size_t p, int full, int compressed, int tail) {
    size_t after[8];  // after[k]: the position after k groups `h{1,4}:`
    size_t count = 0;
    after[0] = p;
    while (count < 7) {
        size_t q = after[count];
        size_t run = hex_span5(c, q);
        if (run < 1 || run > 4 || !byte_is(c, q + run, ':')) break;
        after[++count] = q + run + 1;
    }
    if (count == 0) return;
    if (count == 7) {
        size_t q = after[7];
        size_t run = hex_span5(c, q);
        if (run >= 1 && run <= 4 && boundary(c, q + run)) emit(c, full, start, q + run);
    }
    if (count >= 6) {
        size_t end = dotted_quad(c, after[6]);
        if (end) emit(c, tail, start, end);
    }
    // `(?:h:){1,6}` then `(?::h){1,6}`: the second part starts with the ':' right after the
    // first part's last ':', so the first part is every group up to the "::" (at most six).
    if (count <= 6 && byte_is(c, after[count], ':')) {
        size_t q = after[count];
        for (int group = 0; group < 6; group++) {
            if (!byte_is(c, q, ':')) break;
            size_t run = hex_span5(c, q + 1);
            if (run < 1 || run > 4) break;
            q += 1 + run;
            if (boundary(c, q)) emit(c, compressed, start, q);
        }
    }
}

// '\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b'
// '\b(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}\b'
// '\b(?:[0-9A-Fa-f]{1,4}:){6}(?:\d{1,3}\.){3}\d{1,3}\b'
// s is a hex digit with `\b` before it.
static void ipv6_hex(ctx_t *c, size_t s) {
    ipv6_forms(c, s, s, MK_PAT_IPV6_FULL, MK_PAT_IPV6_COMPRESSED, MK_PAT_IPV6_V4TAIL);
}

// '\b[Ii][Pp][Vv]6:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b'
// '\b[Ii][Pp][Vv]6:(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}\b'
// '\b[Ii][Pp][Vv]6:(?:[0-9A-Fa-f]{1,4}:){6}(?:\d{1,3}\.){3}\d{1,3}\b'
// s is 'I' or 'i' with `\b` before it.
static void ipv6_prefixed(ctx_t *c, size_t s) {
    if (!in_set(c, s + 1, "Pp") || !in_set(c, s + 2, "Vv") || !byte_is(c, s + 3, '6') || !byte_is(c, s + 4, ':')) return;
    ipv6_forms(c, s, s + 5, MK_PAT_IPV6_PREFIX_FULL, MK_PAT_IPV6_PREFIX_COMPRESSED, MK_PAT_IPV6_PREFIX_V4TAIL);
}

// '::(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}\b'
// '::[Ff]{4}:(?:\d{1,3}\.){3}\d{1,3}\b'
// s is ':' (no `\b` before these).
static void ipv6_leading(ctx_t *c, size_t s) {
    if (!byte_is(c, s + 1, ':')) return;
    // One to six groups, each a whole hex run of 1 to 4: a match ends after every group that
    // is followed by a non-word byte; the next group needs a ':' after this one.
    size_t q = s + 2;
    for (int group = 0; group < 6; group++) {
        size_t run = hex_span5(c, q);
        if (run < 1 || run > 4) break;
        size_t end = q + run;
        if (boundary(c, end)) emit(c, MK_PAT_IPV6_LEADING, s, end);
        if (!byte_is(c, end, ':')) break;
        q = end + 1;
    }
    if (in_set(c, s + 2, "Ff") && in_set(c, s + 3, "Ff") && in_set(c, s + 4, "Ff") && in_set(c, s + 5, "Ff")
        && byte_is(c, s + 6, ':')) {
        size_t end = dotted_quad(c, s + 7);
        if (end) emit(c, MK_PAT_IPV6_MAPPED, s, end);
    }
}

// MARK: - Entry

/// What starts a match of each family: one bit per family, looked up per byte. A byte may start
/// several families ('7' a number and an IPv6 address, 'e' a JWT and an IPv6 address, 'A' an IBAN
/// and an IPv6 address, 'I' an IBAN and an `IPv6:` address): each enabled family sees it.
enum {
    A_DIGIT = 1 << 0,
    A_PLUS = 1 << 1,
    A_PAREN = 1 << 2,
    A_EMAIL = 1 << 3,
    A_E = 1 << 4,
    A_UPPER = 1 << 5,
    A_HEX = 1 << 6,    ///< 0-9 a-f A-F: IPv6 addresses
    A_IPV = 1 << 7,    ///< 'I' 'i': IPv6 addresses after `IPv6:`
    A_COLON = 1 << 8,  ///< ':': IPv6 addresses that start with '::'
};
/// Families whose every pattern starts with `\b` at a word byte.
#define A_WORD_START (A_DIGIT | A_UPPER | A_HEX | A_IPV)

static uint16_t anchor_table[256];
/// The tables are filled once, by whichever thread confirms first; `pthread_once` makes the
/// others wait for it (a plain "ready" flag was a data race the thread sanitizer reported).
static pthread_once_t anchor_table_once = PTHREAD_ONCE_INIT;

static void fill_anchor_table(void) {
    for (int b = 0; b < 256; b++) {
        uint16_t a = 0;
        if (b >= '0' && b <= '9') a |= A_DIGIT;
        if (b == '+') a |= A_PLUS;
        if (b == '(') a |= A_PAREN;
        if (b == '@' || b == '%' || b == '&') a |= A_EMAIL;
        if (b == 'e') a |= A_E;
        if (b >= 'A' && b <= 'Z') a |= A_UPPER;
        if ((b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')) a |= A_HEX;
        if (b == 'I' || b == 'i') a |= A_IPV;
        if (b == ':') a |= A_COLON;
        anchor_table[b] = a;
        uint8_t k = 0;
        if (is_aws_secret((uint8_t)b)) k |= B_AWS_SECRET;
        byte_table[b] = k;
    }
}

static void build_anchor_table(void) {
    pthread_once(&anchor_table_once, fill_anchor_table);
}

int mk_confirm(const uint8_t *data, size_t length, const uint8_t *slot_of, uint32_t slots, mk_found found, void *context) {
    if (length == 0 || length > MK_CONFIRM_MAX_WINDOW || slots == 0 || slots > MK_CONFIRM_MAX_SLOTS) return 0;
    build_anchor_table();
    uint16_t best[slots * (length + 1)];
    memset(best, 0, sizeof(best));
    ctx_t c = {data, length, best, slot_of, (size_t)-1, 0};
#define ON(p) (slot_of[p] != 0xFF)
    int cards = ON(MK_PAT_CARD_IIN) || ON(MK_PAT_CARD_VISA) || ON(MK_PAT_CARD_AMEX);
    int ssns = ON(MK_PAT_SSN_DASHED) || ON(MK_PAT_SSN_NINE) || ON(MK_PAT_SSN_SPACED);
    int phones = 0;
    for (int p = MK_PAT_PHONE_E164; p <= MK_PAT_PHONE_PAREN_AREA; p++) phones |= ON(p);
    int emails = ON(MK_PAT_EMAIL_AT) || ON(MK_PAT_EMAIL_PERCENT) || ON(MK_PAT_EMAIL_ENTITY);
    int ibans = ON(MK_PAT_IBAN_COMPACT) || ON(MK_PAT_IBAN_SPACED);
    int ipv4s = ON(MK_PAT_IPV4), jwts = ON(MK_PAT_JWT);
    int ipv6_hexes = ON(MK_PAT_IPV6_FULL) || ON(MK_PAT_IPV6_COMPRESSED) || ON(MK_PAT_IPV6_V4TAIL);
    int ipv6_prefixes = ON(MK_PAT_IPV6_PREFIX_FULL) || ON(MK_PAT_IPV6_PREFIX_COMPRESSED) || ON(MK_PAT_IPV6_PREFIX_V4TAIL);
    int ipv6_colons = ON(MK_PAT_IPV6_LEADING) || ON(MK_PAT_IPV6_MAPPED);
    if (ON(MK_PAT_AWS_SECRET)) aws_secret(&c);
    {
        int stripes = ON(MK_PAT_STRIPE), githubs = ON(MK_PAT_GITHUB_CLASSIC) || ON(MK_PAT_GITHUB_FINE);
        int slacks = ON(MK_PAT_SLACK_TOKEN) || ON(MK_PAT_SLACK_APP), webhooks = ON(MK_PAT_SLACK_WEBHOOK);
        int aws_ids = ON(MK_PAT_AWS_KEY_ID);
        if (stripes || githubs || slacks || webhooks || aws_ids) token_prefixes(&c, stripes, githubs, slacks, webhooks, aws_ids);
    }
    if (ON(MK_PAT_URL_CREDENTIALS)) url_credentials(&c);
    if (ON(MK_PAT_CONN_PASSWORD)) conn_password(&c);
    if (ON(MK_PAT_PEM_PRIVATE_KEY)) pem_private_key(&c);
    if (ON(MK_PAT_XML_PASSWORD)) xml_password(&c);
    if (ON(MK_PAT_HTML_INPUT) || ON(MK_PAT_HTML_INPUT_VALUE_FIRST)) html_inputs(&c, ON(MK_PAT_HTML_INPUT), ON(MK_PAT_HTML_INPUT_VALUE_FIRST));
    if (ON(MK_PAT_KEYED_VALUE) || ON(MK_PAT_KEYED_ELEMENT)) keyed_passwords(&c, ON(MK_PAT_KEYED_VALUE), ON(MK_PAT_KEYED_ELEMENT));
    if (ON(MK_PAT_PGPASS)) pgpass(&c);
    if (ON(MK_PAT_NETRC_LOGIN) || ON(MK_PAT_NETRC_MACHINE)) netrc(&c, ON(MK_PAT_NETRC_LOGIN), ON(MK_PAT_NETRC_MACHINE));
    if (ON(MK_PAT_AWS_CSV_KEY) || ON(MK_PAT_AWS_CSV_CONSOLE)) aws_csv(&c, ON(MK_PAT_AWS_CSV_KEY), ON(MK_PAT_AWS_CSV_CONSOLE));
    if (ON(MK_PAT_MYSQL_FLAG)) mysql_flag(&c);
    if (ON(MK_PAT_PASSWORD_FLAG)) password_flag(&c);
    if (ON(MK_PAT_K8S_SECRET_VALUE) || ON(MK_PAT_K8S_SECRET_LONG)) k8s_secret(&c, ON(MK_PAT_K8S_SECRET_VALUE), ON(MK_PAT_K8S_SECRET_LONG));
    if (ON(MK_PAT_DOB_ISO) || ON(MK_PAT_DOB_NUMERIC) || ON(MK_PAT_DOB_MONTH_FIRST) || ON(MK_PAT_DOB_DAY_FIRST)) {
        dates(&c, ON(MK_PAT_DOB_ISO), ON(MK_PAT_DOB_NUMERIC), ON(MK_PAT_DOB_MONTH_FIRST), ON(MK_PAT_DOB_DAY_FIRST));
    }
    int assigns = ON(MK_PAT_SECRET_ASSIGN), long_assigns = ON(MK_PAT_SECRET_ASSIGN_LONG);
    int quoted_assigns = ON(MK_PAT_SECRET_ASSIGN_DQUOTED) || ON(MK_PAT_SECRET_ASSIGN_SQUOTED);
#undef ON
    uint16_t wanted = (uint16_t)(((cards || ssns || phones || ipv4s) ? A_DIGIT : 0) | (phones ? A_PLUS | A_PAREN : 0)
                               | (emails ? A_EMAIL : 0) | (jwts ? A_E : 0) | (ibans ? A_UPPER : 0)
                               | (ipv6_hexes ? A_HEX : 0) | (ipv6_prefixes ? A_IPV : 0) | (ipv6_colons ? A_COLON : 0));
    if (assigns || quoted_assigns || long_assigns) {
        // Secret assignments: visit the ':' and '=' bytes only (a match's separator is one),
        // then run the other families, if any, as usual.
        secret_scan(&c, assigns, quoted_assigns, long_assigns);
    }
    // The families above have run; nothing is left for the per-byte dispatch below.
    if (wanted == 0) goto collect;
    if (wanted == A_EMAIL || wanted == A_E || wanted == A_COLON) {
        // One rare anchor family (e-mail, JWT, leading-'::' IPv6): jump between anchors with
        // memchr instead of looking at every byte of a window that is mostly the match's left and
        // right reach.
        const uint8_t first = wanted == A_E ? 'e' : wanted == A_COLON ? ':' : '@';
        const uint8_t *needles = wanted == A_E ? (const uint8_t *)"e"
            : wanted == A_COLON ? (const uint8_t *)":" : (const uint8_t *)"@%&";
        for (const uint8_t *n = needles; *n; n++) {
            const uint8_t *p = data;
            const uint8_t *end = data + length;
            while (p < end && (p = memchr(p, *n, (size_t)(end - p))) != NULL) {
                size_t s = (size_t)(p - data);
                if (first == 'e') jwt(&c, s); else if (first == ':') ipv6_leading(&c, s); else email_at(&c, s);
                p++;
            }
        }
        goto collect;
    }
    for (size_t s = 0; s < length; s++) {
        uint16_t kind = anchor_table[data[s]] & wanted;
        if (!kind) continue;
        // Every pattern of these families starts with `\b` at a word byte.
        if ((kind & A_WORD_START) && boundary(&c, s)) {
            if (kind & A_DIGIT) {
                // Each numeric pattern fixes how many digits its first group holds: call only
                // those that can start here (each function checks it again).
                size_t lead = digit_span(&c, s);
                if (cards && lead >= 4) { card_iin(&c, s); card_visa(&c, s); card_amex(&c, s); }
                if (ssns && (lead == 3 || lead == 9)) { ssn_dashed(&c, s); ssn_plain(&c, s); }
                if (phones) {
                    if (lead == 3 || lead == 1) phone_us(&c, s);
                    if (data[s] == '0' && lead >= 2 && lead <= 6) {
                        phone_pairs(&c, s);
                        phone_area_slash(&c, s);
                        phone_three_groups(&c, s);
                        phone_two_groups(&c, s);
                    }
                }
                if (ipv4s && lead <= 3) ipv4(&c, s);
            }
            if (kind & A_HEX) ipv6_hex(&c, s);
            if (kind & A_UPPER) iban(&c, s);
            if (kind & A_IPV) ipv6_prefixed(&c, s);
        }
        // The other families start at bytes that start nothing else ('e' has no `\b` check here:
        // jwt tests it).
        if (kind & A_PLUS) phone_e164(&c, s);
        if (kind & A_PAREN) {
            phone_us(&c, s);
            phone_paren_area(&c, s);
        }
        if (kind & A_EMAIL) email_at(&c, s);
        if (kind & A_E) jwt(&c, s);
        if (kind & A_COLON) ipv6_leading(&c, s);
    }
collect:
    if (c.low > c.high) return 1;
    for (uint32_t slot = 0; slot < slots; slot++) {
        const uint16_t *row = &best[(size_t)slot * (length + 1)];
        for (size_t end = c.low; end <= c.high; end++) {
            if (row[end] != 0) found(context, slot, (uint32_t)(row[end] - 1), (uint32_t)end);
        }
    }
    return 1;
}

// MARK: - E-mail match ends in a stream

enum { E_LOCAL = 1, E_LABEL = 2, E_ALPHA = 4 };
static uint8_t email_table[256];
/// Filled once (see `anchor_table_once`).
static pthread_once_t email_table_once = PTHREAD_ONCE_INIT;

static void fill_email_table(void) {
    for (int b = 0; b < 256; b++) {
        uint8_t c = 0;
        if (is_local((uint8_t)b)) c |= E_LOCAL;
        if (is_label((uint8_t)b)) c |= E_LABEL;
        if (is_alpha((uint8_t)b)) c |= E_ALPHA;
        email_table[b] = c;
    }
}

static void build_email_table(void) {
    pthread_once(&email_table_once, fill_email_table);
}

void mk_email_reset(mk_email_state *state) { memset(state, 0, sizeof(*state)); }

#define MK_TAIL(h, n) ((h) & ((n) == 8 ? ~(uint64_t)0 : (((uint64_t)1 << (8 * (n))) - 1)))
#define MK_BYTE_BACK(h, n) ((uint8_t)((h) >> (8 * (n))))

/// The last eight bytes before `data + i`, newest in the low byte: from the data, completed with
/// `older` (the history before `data`) when `i` < 8.
static inline uint64_t history_before(const uint8_t *data, size_t i, uint64_t older) {
    uint64_t history = i >= 8 ? 0 : older;
    for (size_t k = i >= 8 ? i - 8 : 0; k < i; k++) history = (history << 8) | data[k];
    return history;
}

/// The next '@', '%' or '&' at or after `from`, or `length`. `next` caches each byte's next
/// position (refreshed when passed).
static inline size_t next_anchor(const uint8_t *data, size_t length, size_t from, size_t next[3]) {
    static const uint8_t bytes[3] = {'@', '%', '&'};
    size_t best = length;
    for (int k = 0; k < 3; k++) {
        if (next[k] < from) {
            const uint8_t *found = from < length ? memchr(data + from, bytes[k], length - from) : NULL;
            next[k] = found ? (size_t)(found - data) : length;
        }
        if (next[k] < best) best = next[k];
    }
    return best;
}

void mk_email_ends(mk_email_state *st, const uint8_t *data, size_t length, mk_end found, void *context) {
    build_email_table();
    uint64_t history = st->history;
    uint32_t active = st->active, labels = st->labels, label_length = st->label_length, alpha = st->alpha;
    const uint64_t base = st->offset;
    // "%40", "%2540", "&#64;", "&#x40;" as they sit in the low bytes of `history`.
    const uint64_t pct40 = ((uint64_t)'%' << 16) | ((uint64_t)'4' << 8) | '0';
    const uint64_t pct2540 = ((uint64_t)'%' << 32) | ((uint64_t)'2' << 24) | ((uint64_t)'5' << 16) | ((uint64_t)'4' << 8) | '0';
    const uint64_t ent64 = ((uint64_t)'&' << 32) | ((uint64_t)'#' << 24) | ((uint64_t)'6' << 16) | ((uint64_t)'4' << 8) | ';';
    const uint64_t entx40 = ((uint64_t)'&' << 40) | ((uint64_t)'#' << 32) | ((uint64_t)'x' << 24) | ((uint64_t)'4' << 16)
        | ((uint64_t)'0' << 8) | ';';
    const uint64_t older = history;
    size_t next[3] = {0, 0, 0};
    int cached = 0;
    // Bytes before `scalar_until` are looked at one by one: an anchor's last byte ("%40", "&#64;")
    // comes up to five bytes after its first. Past it, with no domain open, the loop jumps to
    // the next '@', '%' or '&'.
    size_t scalar_until = 6;  // the first bytes may finish an anchor begun in the previous call
    size_t i = 0;
    while (i < length) {
        if (!active && i >= scalar_until) {
            if (!cached) { next[0] = next[1] = next[2] = 0; cached = 1; }
            size_t j = next_anchor(data, length, i, next);
            if (j >= length) { i = length; break; }
            if (j > i) history = j - i >= 8 ? history_before(data, j, 0) : history_before(data + i, j - i, history);
            i = j;
            scalar_until = j + 6;
        }
        uint8_t b = data[i];
        uint8_t cls = email_table[b];
        if ((b == '@' || b == '%' || b == '&') && i + 6 > scalar_until) scalar_until = i + 6;
        if (active) {
            if (cls & E_LABEL) {
                label_length++;
                alpha = alpha && (cls & E_ALPHA);
                if (labels >= 1 && alpha && label_length >= 2) found(context, base + i + 1);
            } else if (b == '.' && label_length > 0) {
                labels++;
                label_length = 0;
                alpha = 1;
            } else {
                active = 0;
            }
        }
        history = (history << 8) | b;
        // A local-part byte must sit just before the '@' (or the '%' or '&' of an encoded one).
        int open = 0;
        if (b == '@') {
            open = (email_table[MK_BYTE_BACK(history, 1)] & E_LOCAL) != 0;
        } else if (b == '0') {
            if (MK_TAIL(history, 3) == pct40) open = (email_table[MK_BYTE_BACK(history, 3)] & E_LOCAL) != 0;
            else if (MK_TAIL(history, 5) == pct2540) open = (email_table[MK_BYTE_BACK(history, 5)] & E_LOCAL) != 0;
        } else if (b == ';') {
            if (MK_TAIL(history, 5) == ent64) open = (email_table[MK_BYTE_BACK(history, 5)] & E_LOCAL) != 0;
            else if (MK_TAIL(history, 6) == entx40) open = (email_table[MK_BYTE_BACK(history, 6)] & E_LOCAL) != 0;
        }
        if (open) {
            active = 1;
            labels = 0;
            label_length = 0;
            alpha = 1;
        }
        i++;
    }
    // The history after the last byte, whichever way the loop ended.
    st->history = length >= 8 ? history_before(data, length, 0) : history_before(data, length, older);
    st->active = active;
    st->labels = labels;
    st->label_length = label_length;
    st->alpha = alpha;
    st->offset = base + length;
}

// MARK: - Window prechecks

static inline uint8_t fold(uint8_t byte) {
    return (byte >= 'A' && byte <= 'Z') ? (uint8_t)(byte | 0x20) : byte;
}

int mk_contains_caseless(const uint8_t *data, size_t length, const uint8_t *needle, size_t needle_length) {
    if (needle_length == 0) return 1;
    if (needle_length > length) return 0;
    // Anchor on a byte that is not a letter when there is one (memchr finds it fast); else on the
    // first letter, compared folded.
    size_t anchor = 0;
    int letter = 1;
    for (size_t i = 0; i < needle_length; i++) {
        uint8_t b = needle[i];
        if (!((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z'))) { anchor = i; letter = 0; break; }
    }
    const uint8_t first = fold(needle[anchor]);
    const size_t last_start = length - needle_length;
    if (!letter) {
        const uint8_t *p = data + anchor;
        const uint8_t *end = data + last_start + anchor + 1;  // anchor positions that leave room
        while (p < end) {
            const uint8_t *hit = memchr(p, first, (size_t)(end - p));
            if (!hit) return 0;
            size_t start = (size_t)(hit - data) - anchor;
            size_t i = 0;
            while (i < needle_length && fold(data[start + i]) == fold(needle[i])) i++;
            if (i == needle_length) return 1;
            p = hit + 1;
        }
        return 0;
    }
    for (size_t start = 0; start <= last_start; start++) {
        if (fold(data[start]) != first) continue;
        size_t i = 1;
        while (i < needle_length && fold(data[start + i]) == fold(needle[i])) i++;
        if (i == needle_length) return 1;
    }
    return 0;
}

long mk_find_literal(const uint8_t *data, size_t length, const uint8_t *needle, size_t needle_length) {
    if (needle_length == 0) return 0;
    if (needle_length > length) return -1;
    const uint8_t *p = data;
    const uint8_t *end = data + (length - needle_length) + 1;  // starts that leave room
    while (p < end) {
        const uint8_t *hit = memchr(p, needle[0], (size_t)(end - p));
        if (!hit) return -1;
        if (memcmp(hit, needle, needle_length) == 0) return (long)(hit - data);
        p = hit + 1;
    }
    return -1;
}

void mk_count_anchors(const uint8_t *data, size_t length, mk_anchor_counts *out) {
    // Branch-free, in 256-byte rounds whose 8-bit counters cannot overflow, so the compiler
    // vectorises the inner loop.
    uint64_t digits = 0, colons = 0, signs = 0;
    size_t offset = 0;
    while (offset < length) {
        size_t round = length - offset < 255 ? length - offset : 255;
        uint8_t d = 0, c = 0, s = 0;
        for (size_t i = 0; i < round; i++) {
            uint8_t byte = data[offset + i];
            d += (uint8_t)(byte - '0') < 10;
            c += byte == ':';
            s |= (byte == '@') | (byte == '%') | (byte == '&');
        }
        digits += d;
        colons += c;
        signs |= s;
        offset += round;
    }
    out->digits = digits;
    out->colons = colons;
    out->email_signs = signs;
}
