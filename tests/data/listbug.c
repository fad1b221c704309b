/* A user program with a real bug, for docs/linux.md section 6 and
 * tests/integration/test_linux_bug.py: an off-by-one loop writes one int past a
 * node's values[] array, over the node's `next` pointer; the list walk that comes
 * later follows the corrupted pointer and the process dies of SIGSEGV.
 *
 * Built at test time: gcc -m32 -static -O0 -g listbug.c -o listbug
 * (the test finds the lines it expects by the markers in the comments).
 */
#include <stdio.h>
#include <stdlib.h>

#define NVALUES 4

struct node {
    int values[NVALUES];
    struct node *next; /* right after values[]: values[NVALUES] is this pointer */
};

struct node *list; /* the head of the list (a global: gdb finds it by name) */

static void fill(struct node *n, int key)
{
    for (int i = 0; i <= NVALUES; i++) /* BUG: <= where < was meant */
        n->values[i] = 0x5eed0000 | (key << 8) | i; /* the stray store */
}

static struct node *push(struct node *head, int key)
{
    struct node *n = malloc(sizeof *n);
    if (n == NULL)
        exit(2);
    n->next = head;
    fill(n, key);
    return n;
}

static int sum(const struct node *n)
{
    int total = 0;
    for (; n != NULL; n = n->next)
        total += n->values[0]; /* the crash: n is the corrupted pointer */
    return total;
}

int main(void)
{
    for (int key = 1; key <= 3; key++)
        list = push(list, key);
    printf("listbug: list built, head %p, head->next %p\n", (void *)list, (void *)list->next);
    fflush(stdout);
    printf("listbug: sum %d\n", sum(list));
    return 0;
}
