#ifndef SLUICE_MASK_KERNEL_H
#define SLUICE_MASK_KERNEL_H

// The classification pass of the masking engine: one pass over the bytes that turns every
// 64-byte block into bitmasks (bit i describes byte i of the block) and, from them, the
// candidate anchors of the numeric and '@'-anchored detectors. No allocation, no I/O; every
// output array has a capacity given by the caller.
//
// Implementations: AVX-512BW, AVX2, SSE4.2 and a portable one, chosen once at run time
// (mk_kernel_name says which). They produce identical results; the tests check that.

#include <stddef.h>
#include <stdint.h>

#include "runs.h"       // the SIMD digit-run finder
#include "classruns.h"  // the SIMD class-run finder (IPv6, IBAN)

#ifdef __cplusplus
extern "C" {
#endif

/// The classes of one 64-byte block.
typedef struct {
    uint64_t digit;      ///< 0-9
    uint64_t separator;  ///< bytes that may sit inside a number: space - . ( ) / +
    uint64_t at;         ///< '@'
    uint64_t colon;      ///< ':'
    uint64_t upper;      ///< A-Z
    uint64_t hex;        ///< 0-9 a-f A-F
    uint64_t word;       ///< A-Z a-z 0-9 _
} mk_block_masks;

/// Classifies `blocks` whole 64-byte blocks of `data` into `out[0..<blocks]`.
void mk_classify(const uint8_t *data, size_t blocks, mk_block_masks *out);

/// A run of digits and separators that starts and ends with a digit and holds at least
/// `min_digits` digits; two separators in a row end a run. Offsets are absolute.
typedef struct {
    uint64_t start;
    uint64_t end;
    uint32_t digits;
    uint32_t reserved;
} mk_run;

/// What the finder carries from one call to the next, so its output does not depend on how the
/// stream was cut into calls. Zero it (mk_finder_reset) at the start of a stream.
typedef struct {
    uint64_t offset;          ///< absolute offset of the next byte
    uint64_t run_start;       ///< first digit of the open run
    uint64_t run_last_digit;  ///< one past the last digit of the open run
    uint32_t run_digits;      ///< digits in the open run
    uint32_t in_run;          ///< a run is open
    uint32_t separators;      ///< separators since the run's last digit
    uint32_t reserved;
} mk_finder_state;

/// Where the anchors of one call go. Counts are set by the call; when a capacity is reached the
/// call stops early and returns the number of bytes it consumed (the caller drains and calls
/// again with the rest).
typedef struct {
    mk_run *runs;
    size_t runs_capacity;
    size_t runs_count;
    uint64_t *ats;            ///< absolute offsets of '@'
    size_t ats_capacity;
    size_t ats_count;
    uint64_t *colons;         ///< absolute offsets of ':' next to a hex digit or another ':'
    size_t colons_capacity;
    size_t colons_count;
} mk_anchors;

void mk_finder_reset(mk_finder_state *state);

/// Scans `length` bytes of the stream (absolute offset `state->offset`). Returns the number of
/// bytes consumed: `length` unless an anchor array filled up. `min_digits` is at least 1.
size_t mk_find(mk_finder_state *state, const uint8_t *data, size_t length, uint32_t min_digits, mk_anchors *anchors);

/// Closes the open run at the end of the stream (or at an idle flush); returns 1 when a run was
/// reported into `anchors`, 0 otherwise (or when the array is full: call again after draining).
int mk_finder_finish(mk_finder_state *state, uint32_t min_digits, mk_anchors *anchors);

/// "avx512bw", "avx2", "sse4.2" or "portable": the implementation mk_classify uses.
const char *mk_kernel_name(void);

/// Forces an implementation for tests and benchmarks ("portable", "sse4.2", "avx2", "avx512bw");
/// returns 0 when this CPU cannot run it. Not thread-safe: call before any scan.
int mk_force_kernel(const char *name);


// MARK: - Software confirmers of built-in detectors (confirmers.c)

/// The built-in patterns the software confirmers know, by their expression in corpora/pii.yaml
/// and corpora/secrets.yaml (MaskEngine maps pattern text to these ids; any other text goes to Hyperscan).
/// The MK_PAT_SECRET_* confirmers match their keywords caseless: they stand for those
/// expressions only in a caseless detector.
enum {
    MK_PAT_CARD_IIN = 0,        ///< credit_card, first pattern
    MK_PAT_CARD_VISA,           ///< credit_card, second
    MK_PAT_CARD_AMEX,           ///< credit_card, third
    MK_PAT_SSN_DASHED,          ///< us_ssn
    MK_PAT_SSN_NINE,            ///< us_ssn_named, first
    MK_PAT_SSN_SPACED,          ///< us_ssn_named, second
    MK_PAT_PHONE_E164,          ///< phone, patterns one to eight
    MK_PAT_PHONE_US,
    MK_PAT_PHONE_PAIRS,
    MK_PAT_PHONE_DOTS,
    MK_PAT_PHONE_AREA_SLASH,
    MK_PAT_PHONE_THREE_GROUPS,
    MK_PAT_PHONE_TWO_GROUPS,
    MK_PAT_PHONE_PAREN_AREA,
    MK_PAT_EMAIL_AT,            ///< email, patterns one to three
    MK_PAT_EMAIL_PERCENT,
    MK_PAT_EMAIL_ENTITY,
    MK_PAT_IPV4,                ///< ipv4
    MK_PAT_IBAN_COMPACT,        ///< iban, first
    MK_PAT_IBAN_SPACED,         ///< iban, second
    MK_PAT_JWT,                 ///< jwt
    MK_PAT_AWS_SECRET,          ///< aws_secret_access_key, aws_secret_near_key_id
    MK_PAT_STRIPE,              ///< stripe_key
    MK_PAT_GITHUB_CLASSIC,      ///< github_token, first
    MK_PAT_GITHUB_FINE,         ///< github_token, second
    MK_PAT_SLACK_TOKEN,         ///< slack_token, patterns one to three
    MK_PAT_SLACK_APP,
    MK_PAT_SLACK_WEBHOOK,
    MK_PAT_AWS_KEY_ID,          ///< aws_access_key_id
    MK_PAT_SECRET_ASSIGN,       ///< secret_assignment, first pattern (caseless)
    MK_PAT_SECRET_ASSIGN_DQUOTED, ///< secret_assignment, second (caseless)
    MK_PAT_SECRET_ASSIGN_SQUOTED, ///< secret_assignment, third (caseless)
    MK_PAT_SECRET_ASSIGN_LONG,  ///< secret_assignment_long (caseless)
    MK_PAT_IPV6_FULL,           ///< ipv6, patterns one to eight: eight groups
    MK_PAT_IPV6_COMPRESSED,     ///< groups around one '::'
    MK_PAT_IPV6_V4TAIL,         ///< six groups and a dotted quad
    MK_PAT_IPV6_PREFIX_FULL,    ///< the first three after `IPv6:`
    MK_PAT_IPV6_PREFIX_COMPRESSED,
    MK_PAT_IPV6_PREFIX_V4TAIL,
    MK_PAT_IPV6_LEADING,        ///< leading '::'
    MK_PAT_IPV6_MAPPED,         ///< `::ffff:` and a dotted quad
    MK_PAT_URL_CREDENTIALS,     ///< url_credentials
    MK_PAT_CONN_PASSWORD,       ///< connection_string_password (caseless)
    MK_PAT_PEM_PRIVATE_KEY,     ///< pem_private_key
    MK_PAT_DOB_ISO,             ///< date_of_birth, patterns one to four (caseless)
    MK_PAT_DOB_NUMERIC,
    MK_PAT_DOB_MONTH_FIRST,
    MK_PAT_DOB_DAY_FIRST,
    MK_PAT_K8S_SECRET_VALUE,    ///< k8s_secret_data, first pattern (a base64 value to the end of the line)
    MK_PAT_K8S_SECRET_LONG,     ///< second (129 base64 bytes)
    MK_PAT_PGPASS,              ///< pgpass_password
    MK_PAT_NETRC_LOGIN,         ///< netrc_password, first pattern
    MK_PAT_NETRC_MACHINE,       ///< second
    MK_PAT_AWS_CSV_KEY,         ///< aws_csv_password, first pattern
    MK_PAT_AWS_CSV_CONSOLE,     ///< second
    MK_PAT_MYSQL_FLAG,          ///< mysql_password_flag
    MK_PAT_PASSWORD_FLAG,       ///< password_flag
    MK_PAT_XML_PASSWORD,        ///< xml_password (caseless)
    MK_PAT_HTML_INPUT,          ///< html_password_input (caseless)
    MK_PAT_HTML_INPUT_VALUE_FIRST, ///< html_password_input_value_first (caseless)
    MK_PAT_KEYED_VALUE,         ///< keyed_password_value (caseless)
    MK_PAT_KEYED_ELEMENT,       ///< keyed_password_element (caseless)
    MK_PAT_COUNT
};

/// Longest window and most detector slots one call handles.
#define MK_CONFIRM_MAX_WINDOW 1024
#define MK_CONFIRM_MAX_SLOTS 8

/// Receives one confirmed match: detector slot, start and end relative to the window.
typedef void (*mk_found)(void *context, uint32_t slot, uint32_t start, uint32_t end);

/// For every detector slot and every end in `data[0..<length]`, the leftmost start of a match
/// of that slot's patterns ending there (the window is a whole buffer: `\\b` holds at its edges
/// next to a word byte), passed to `found` in slot then end order. `slot_of[pattern]` is the slot
/// of each MK_PAT_* id, 0xFF when it does not run. Returns 0 (and reports nothing) when `length`
/// is 0 or exceeds MK_CONFIRM_MAX_WINDOW, or `slots` exceeds MK_CONFIRM_MAX_SLOTS: scan the window
/// with Hyperscan instead.
int mk_confirm(const uint8_t *data, size_t length, const uint8_t *slot_of, uint32_t slots, mk_found found, void *context);

/// Receives one match end (absolute offset).
typedef void (*mk_end)(void *context, uint64_t end);

/// What the e-mail end finder carries from one call to the next (zero it with mk_email_reset).
typedef struct {
    uint64_t offset;        ///< absolute offset of the next byte
    uint64_t history;       ///< the last eight bytes, newest in the low byte (0 before the stream)
    uint32_t active;        ///< a domain is being read after an '@' (or an encoded one)
    uint32_t labels;        ///< dots read in it
    uint32_t label_length;  ///< bytes of the current label
    uint32_t alpha;         ///< the current label is letters only
} mk_email_state;

void mk_email_reset(mk_email_state *state);

/// Reports every offset where a match of one of the three built-in e-mail patterns ends (what a
/// Hyperscan stream scan of them without start-of-match reports), for `length` more bytes of the
/// stream; the result does not depend on how the stream is cut into calls.
void mk_email_ends(mk_email_state *state, const uint8_t *data, size_t length, mk_end found, void *context);

/// Whether `needle` occurs in `data[0..<length]`, ASCII letters compared without case. The
/// window prechecks of triggered detectors use it: a window without a literal that every match
/// contains holds no match.
int mk_contains_caseless(const uint8_t *data, size_t length, const uint8_t *needle, size_t needle_length);

/// The offset of the first occurrence of `needle` in `data[0..<length]` (bytes compared exactly),
/// or -1.
long mk_find_literal(const uint8_t *data, size_t length, const uint8_t *needle, size_t needle_length);

/// What one value holds of the bytes the software finders' candidates need (the value masker's
/// fast path): digits, colons, and whether an e-mail sign ('@', '%' or '&') occurs.
typedef struct {
    uint64_t digits;
    uint64_t colons;
    uint64_t email_signs;
} mk_anchor_counts;

/// Counts the anchors of `data[0..<length]` into `out`.
void mk_count_anchors(const uint8_t *data, size_t length, mk_anchor_counts *out);

#ifdef __cplusplus
}
#endif

#endif
