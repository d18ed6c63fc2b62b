/* SPDX-License-Identifier: MIT */
#pragma once

/* Intrusive doubly-linked lists in the style of systemd's list.h: the list head is a plain pointer, each item
 * embeds LIST_FIELDS(type, name). Removal is O(1) and needs no allocation. */

#define LIST_HEAD(t, name) t *name
#define LIST_FIELDS(t, name) t *name##_next, *name##_prev

#define LIST_INIT(name, item)                                     \
        do {                                                      \
                (item)->name##_next = (item)->name##_prev = NULL; \
        } while (0)

/* Appends at the tail; O(n) in the list length, so used only for short lists. */
#define LIST_APPEND(name, head, item)                                              \
        do {                                                                       \
                __typeof__(*(head)) **_h_ = &(head), *_i_ = (item), *_t_;          \
                _i_->name##_next = NULL;                                           \
                if (!*_h_) {                                                       \
                        _i_->name##_prev = NULL;                                   \
                        *_h_ = _i_;                                                \
                } else {                                                           \
                        for (_t_ = *_h_; _t_->name##_next; _t_ = _t_->name##_next) \
                                ;                                                  \
                        _t_->name##_next = _i_;                                    \
                        _i_->name##_prev = _t_;                                    \
                }                                                                  \
        } while (0)

#define LIST_PREPEND(name, head, item)                              \
        do {                                                        \
                __typeof__(*(head)) **_h_ = &(head), *_i_ = (item); \
                if ((_i_->name##_next = *_h_))                      \
                        _i_->name##_next->name##_prev = _i_;        \
                _i_->name##_prev = NULL;                            \
                *_h_ = _i_;                                         \
        } while (0)

#define LIST_REMOVE(name, head, item)                                     \
        do {                                                              \
                __typeof__(*(head)) **_h_ = &(head), *_i_ = (item);       \
                if (_i_->name##_next)                                     \
                        _i_->name##_next->name##_prev = _i_->name##_prev; \
                if (_i_->name##_prev)                                     \
                        _i_->name##_prev->name##_next = _i_->name##_next; \
                else if (*_h_ == _i_)                                     \
                        *_h_ = _i_->name##_next;                          \
                _i_->name##_next = _i_->name##_prev = NULL;               \
        } while (0)

/* A list that also keeps its tail: appending is O(1) (a FIFO, oldest at the head). Remove its items with
 * LIST_REMOVE_WITH_TAIL so that the tail stays right. */
#define LIST_APPEND_WITH_TAIL(name, head, tail, item) \
        do {                                          \
                __typeof__(*(head)) *_i_ = (item);    \
                _i_->name##_next = NULL;              \
                _i_->name##_prev = (tail);            \
                if (tail)                             \
                        (tail)->name##_next = _i_;    \
                else                                  \
                        (head) = _i_;                 \
                (tail) = _i_;                         \
        } while (0)

#define LIST_REMOVE_WITH_TAIL(name, head, tail, item) \
        do {                                          \
                __typeof__(*(head)) *_t_ = (item);    \
                if ((tail) == _t_)                    \
                        (tail) = _t_->name##_prev;    \
                LIST_REMOVE(name, head, _t_);         \
        } while (0)

#define LIST_FOREACH(name, i, head) for ((i) = (head); (i); (i) = (i)->name##_next)

/* Safe against removal of i inside the body. */
#define LIST_FOREACH_SAFE(name, i, n, head) for ((i) = (head); (i) && (((n) = (i)->name##_next), 1); (i) = (n))
