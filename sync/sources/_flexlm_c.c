/* The checkout lines of `lmstat -a`, read in C: an optional accelerator.
 *
 * `sync/sources/flexlm.py` is the reference and works without this module. This reads
 * only the common line shape, a strict subset of what flexlm.py's `_CHECKOUTS_FAST`
 * regex accepts, and builds the same Checkout tuples it would:
 *
 *     [ \t]*USER HOST DISPLAY (vCLIENT) (SERVER/PORT HANDLE), start DAY M/D H:MM
 *         [, N licenses][ (linger: A / B)][, PID: P][ \t]*\n
 *
 * USER, HOST and DISPLAY are printable ASCII without '(' (so str.split() gives the same
 * three tokens); numbers are ASCII digits. A line of any other shape is skipped, and
 * flexlm.py, seeing fewer checkouts than ", start " markers, reads the block itself. A
 * line is matched only up to its '\n', and every index is checked against it.
 *
 * Only Latin-1 text (one byte a character, as lmstat prints) is read here; for any other
 * string `checkouts` returns None and flexlm.py does the work.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define N_FIELDS 11

typedef struct {
    Py_ssize_t a, b; /* [a, b); a < 0: absent */
} Span;

typedef struct {
    Span user, host, display, cv, srv, port, handle, start, count, linger, pid;
} Line;

static inline int is_digit(Py_UCS1 c) { return c >= '0' && c <= '9'; }

static inline int is_word(Py_UCS1 c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline int is_token(Py_UCS1 c) { return c > ' ' && c < 0x7f && c != '('; }

/* The literal `lit` at s[i:]: the index after it, or -1. Never reads at or past `end`. */
static Py_ssize_t lit(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t end, const char *lit)
{
    for (; *lit; lit++, i++) {
        if (i >= end || s[i] != (Py_UCS1)*lit)
            return -1;
    }
    return i;
}

static Py_ssize_t run_of(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t end, int (*ok)(Py_UCS1))
{
    while (i < end && ok(s[i]))
        i++;
    return i;
}

static int is_digit_or_slash(Py_UCS1 c) { return is_digit(c) || c == '/'; }
static int is_digit_or_colon(Py_UCS1 c) { return is_digit(c) || c == ':'; }
static int is_digit_fn(Py_UCS1 c) { return is_digit(c); }
static int is_word_fn(Py_UCS1 c) { return is_word(c); }
static int is_token_fn(Py_UCS1 c) { return is_token(c); }

/* Match one line s[i:end] (s[end] is its '\n'); fill `ln`. 1: matched, 0: not. */
static int match_line(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t end, Line *ln)
{
    Py_ssize_t j, k;
    Span *tokens[3] = {&ln->user, &ln->host, &ln->display};

    while (i < end && (s[i] == ' ' || s[i] == '\t'))
        i++;
    for (int t = 0; t < 3; t++) { /* three tokens, one space after each */
        j = run_of(s, i, end, is_token_fn);
        if (j == i || j >= end || s[j] != ' ')
            return 0;
        tokens[t]->a = i;
        tokens[t]->b = j;
        i = j + 1;
    }
    /* (vCLIENT): anything but ')' up to the first ')' */
    if ((i = lit(s, i, end, "(")) < 0 || i >= end || s[i] != 'v')
        return 0;
    ln->cv.a = i;
    while (i < end && s[i] != ')')
        i++;
    if (i >= end)
        return 0;
    ln->cv.b = i;
    if ((i = lit(s, i, end, ") (")) < 0)
        return 0;
    /* SERVER/PORT HANDLE) */
    j = i;
    while (j < end && s[j] != '/' && s[j] != '(' && s[j] != ')')
        j++;
    if (j == i || j >= end || s[j] != '/')
        return 0;
    ln->srv.a = i;
    ln->srv.b = j;
    i = j + 1;
    j = run_of(s, i, end, is_digit_fn);
    if (j == i || j >= end || s[j] != ' ')
        return 0;
    ln->port.a = i;
    ln->port.b = j;
    i = j + 1;
    j = run_of(s, i, end, is_digit_fn);
    if (j == i)
        return 0;
    ln->handle.a = i;
    ln->handle.b = j;
    if ((i = lit(s, j, end, "), start ")) < 0)
        return 0;
    /* DAY M/D H:MM */
    ln->start.a = i;
    j = run_of(s, i, end, is_word_fn);
    if (j == i || j >= end || s[j] != ' ')
        return 0;
    i = j + 1;
    j = run_of(s, i, end, is_digit_or_slash);
    if (j == i || j >= end || s[j] != ' ')
        return 0;
    i = j + 1;
    j = run_of(s, i, end, is_digit_or_colon);
    if (j == i)
        return 0;
    ln->start.b = i = j;
    /* , N license[s] */
    ln->count.a = -1;
    if ((j = lit(s, i, end, ", ")) >= 0) {
        k = run_of(s, j, end, is_digit_fn);
        if (k > j) {
            Py_ssize_t m = lit(s, k, end, " license");
            if (m >= 0) {
                if (m < end && s[m] == 's')
                    m++;
                ln->count.a = j;
                ln->count.b = k;
                i = m;
            }
        }
    }
    /* [ \t]*(linger: A ...) */
    ln->linger.a = -1;
    j = i;
    while (j < end && (s[j] == ' ' || s[j] == '\t'))
        j++;
    if ((j = lit(s, j, end, "(linger: ")) >= 0) {
        k = run_of(s, j, end, is_digit_fn);
        if (k > j) {
            Py_ssize_t m = k;
            while (m < end && s[m] != ')')
                m++;
            if (m < end) {
                ln->linger.a = j;
                ln->linger.b = k;
                i = m + 1;
            }
        }
    }
    /* , PID: P */
    ln->pid.a = -1;
    if ((j = lit(s, i, end, ", PID: ")) >= 0) {
        k = run_of(s, j, end, is_digit_fn);
        if (k > j) {
            ln->pid.a = j;
            ln->pid.b = k;
            i = k;
        }
    }
    while (i < end && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i == end;
}

static PyObject *int_of(PyObject *text, const Py_UCS1 *s, Span sp)
{
    if (sp.b - sp.a <= 18) {
        long long v = 0;
        for (Py_ssize_t k = sp.a; k < sp.b; k++)
            v = v * 10 + (s[k] - '0');
        return PyLong_FromLongLong(v);
    }
    PyObject *sub = PyUnicode_Substring(text, sp.a, sp.b);
    if (sub == NULL)
        return NULL;
    PyObject *v = PyLong_FromUnicodeObject(sub, 10);
    Py_DECREF(sub);
    return v;
}

static PyObject *str_of(PyObject *text, Span sp) { return PyUnicode_Substring(text, sp.a, sp.b); }

static PyObject *opt_int(PyObject *text, const Py_UCS1 *s, Span sp, PyObject *absent)
{
    if (sp.a < 0)
        return Py_NewRef(absent);
    return int_of(text, s, sp);
}

/* One Checkout (a tuple subclass of N_FIELDS items), or NULL with an exception set. */
static PyObject *build(PyTypeObject *cls, PyObject *text, const Py_UCS1 *s, const Line *ln)
{
    PyObject *one = NULL, *items[N_FIELDS];
    one = PyLong_FromLong(1);
    if (one == NULL)
        return NULL;
    items[0] = str_of(text, ln->user);
    items[1] = str_of(text, ln->host);
    items[2] = str_of(text, ln->display);
    items[3] = str_of(text, ln->cv);
    items[4] = str_of(text, ln->srv);
    items[5] = int_of(text, s, ln->port);
    items[6] = int_of(text, s, ln->handle);
    items[7] = str_of(text, ln->start);
    items[8] = opt_int(text, s, ln->count, one);
    items[9] = opt_int(text, s, ln->linger, Py_None);
    items[10] = opt_int(text, s, ln->pid, Py_None);
    Py_DECREF(one);
    PyObject *obj = NULL;
    for (int f = 0; f < N_FIELDS; f++) {
        if (items[f] == NULL)
            goto fail;
    }
    obj = cls->tp_alloc(cls, N_FIELDS);
    if (obj == NULL)
        goto fail;
    for (int f = 0; f < N_FIELDS; f++)
        PyTuple_SET_ITEM(obj, f, items[f]); /* steals the reference */
    return obj;
fail:
    for (int f = 0; f < N_FIELDS; f++)
        Py_XDECREF(items[f]);
    return NULL;
}

PyDoc_STRVAR(checkouts_doc,
             "checkouts(body, cls, /)\n--\n\n"
             "The checkout lines of one `Users of` block's body, each as an instance of `cls`\n"
             "(a tuple subclass of 11 fields), in order. A line counts only when a '\\n'\n"
             "comes before it and after it. None when `body` is not one-byte (Latin-1) text.");

static PyObject *checkouts(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "checkouts() takes exactly 2 arguments (body, cls)");
        return NULL;
    }
    PyObject *text = args[0];
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "body must be str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (!PyType_Check(args[1]) || !PyType_IsSubtype((PyTypeObject *)args[1], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a subclass of tuple");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[1];
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
        Py_RETURN_NONE;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    const Py_UCS1 *nl = memchr(s, '\n', (size_t)n);
    while (nl != NULL) {
        Py_ssize_t start = (nl - s) + 1;
        const Py_UCS1 *next = start < n ? memchr(s + start, '\n', (size_t)(n - start)) : NULL;
        if (next == NULL)
            break; /* the last line has no '\n' after it: not a match, as in the regex */
        Py_ssize_t end = next - s;
        Line ln;
        if (end - start > 20 && match_line(s, start, end, &ln)) {
            PyObject *c = build(cls, text, s, &ln);
            if (c == NULL || PyList_Append(out, c) < 0) {
                Py_XDECREF(c);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(c);
        }
        nl = next;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"checkouts", (PyCFunction)(void (*)(void))checkouts, METH_FASTCALL, checkouts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_flexlm_c",
    .m_doc = "The checkout lines of lmstat -a, read in C (optional; flexlm.py is the reference).",
    .m_size = -1,
    .m_methods = methods,
};

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 "" /* built by hand: no claim about which source */
#endif

PyMODINIT_FUNC PyInit__flexlm_c(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
