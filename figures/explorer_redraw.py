"""Redrawing the explorer window by blitting: repaint only what changed, pixel for pixel.

:class:`BlitRedraw` is the drawing half of :class:`figures.explorer.ExplorerApp` (module
docstring there, "Drawing"): a full ``canvas.draw()`` keeps the background; an update restores it
and draws only the animated artists (the panels' data and the widgets' moving parts); a static
top-level artist whose signature changed (a panel's limits, a slider's value text, a line of the
summary) is repainted into the background alone, over the union of its extents before and after
(:meth:`BlitRedraw._repaint_region`). :class:`TextLines` draws a multi-line text as one artist per
line, so that a changed line costs that line.

The host class provides ``fig``, ``blit``, ``interactive``, the cached ``_bg``, ``_sig`` and
``_extents``, and the two methods that name its artists: ``_animated()`` (redrawn on every
update) and ``_static_signature()`` (``{top-level artist: signature}`` plus ``'figure'``); it may
override :meth:`BlitRedraw._inner_change` and :meth:`BlitRedraw._y_rescaled_axes` to say when an
axes' change lies inside it and its y-axis (a y-range, an in-axes legend: only that part is then
repainted, :meth:`BlitRedraw._repaint_y_range`).
"""

from __future__ import annotations

import time

import numpy as np

from selfdistill_cli.files import save_figure

__all__ = ["BlitRedraw", "TextLines"]

#: Pixels inside a legend's outline that may blend with what lies beneath (:func:`_legend_inside`).
_LEGEND_EDGE = 3.0


def _extent(artist, renderer):
    """Display-space extent of a top-level artist (ticks, labels and legends included); ``None``
    for a text that draws nothing."""
    from matplotlib.text import Text

    if isinstance(artist, Text) and not (artist.get_visible() and artist.get_text()):
        return None
    return artist.get_tightbbox(renderer)


def _extent_after_y_change(before, yaxis):
    """Extent of an axes after a change inside it and of its y-axis, given its extent
    ``before`` and its y-axis' new extent ``yaxis``.

    The title and the x-axis keep their places, what is inside the axes (grid lines, an
    in-axes legend) lies within ``before``; only the y-axis may reach out further. The union
    may be larger than the exact extent (the old tick labels' room is kept): a larger region is
    repainted later, never a smaller one.
    """
    from matplotlib.transforms import Bbox

    return before if yaxis is None else Bbox.union([before, yaxis])


def _legend_inside(legend, renderer):
    """Whole-pixel box strictly inside an opaque legend's frame, or ``None``.

    There every pixel is the legend's own (its opaque face, entries and handles), whatever lies
    beneath; the ``_LEGEND_EDGE`` pixels next to the outline are excluded: the frame's edge
    line, its rounded corners (radius 0.2 font sizes, ~2 px) and their antialiasing blend with
    what is beneath. ``None`` for a legend that is absent, hidden, frameless or translucent.
    """
    if legend is None or not legend.get_visible() or not legend.get_frame_on():
        return None
    frame = legend.get_frame()
    if frame.get_alpha() != 1.0 or frame.get_facecolor()[3] != 1.0:
        return None
    from matplotlib.transforms import Bbox

    box = frame.get_window_extent(renderer)
    edge = _LEGEND_EDGE + 0.5 * frame.get_linewidth() * renderer.points_to_pixels(1.0)
    inside = Bbox([np.ceil(box.p0 + edge), np.floor(box.p1 - edge)])
    return inside if inside.width > 0 and inside.height > 0 else None


def _pixel_box(box, pad=2):
    """``box`` grown by ``pad`` pixels (antialiasing) and out to whole pixels."""
    from matplotlib.transforms import Bbox

    return Bbox([np.floor(box.p0) - pad, np.ceil(box.p1) + pad])


class TextLines:
    """A multi-line figure text drawn as one :class:`~matplotlib.text.Text` per line.

    Matplotlib (3.11) renders text glyph by glyph, ~0.1 ms per character: the explorer's
    five-line summary cost ~45 ms on every update. One artist per line lets a window repaint
    only the lines that changed (:meth:`ExplorerApp.refresh`), usually one. ``set_text`` /
    ``get_text`` / ``get_window_extent`` behave as for a single text anchored at its top left
    (``va='top'``); lines beyond ``max_lines`` go into the last artist.
    """

    def __init__(self, fig, x, y, *, max_lines=12, **kwargs):
        # Where matplotlib's multi-line layout puts the lines: a block of two lines is two
        # pitches high, one line is a pitch less the line gap, and the first baseline of a block
        # sits half a gap lower than a single line's.
        probe = fig.text(x, y, "lp\nlp", va="top", **kwargs)
        two = probe.get_window_extent().height
        probe.set_text("lp")
        one = probe.get_window_extent().height
        probe.remove()
        pitch = 0.5 * two / fig.bbox.height
        gap = pitch - one / fig.bbox.height
        self.lines = [
            fig.text(x, y - 0.5 * gap - i * pitch, "", va="top", **kwargs) for i in range(max_lines)
        ]
        self._text = ""

    def set_text(self, text: str) -> None:
        self._text = str(text)
        parts = self._text.split("\n")
        n = len(self.lines)
        parts = parts[: n - 1] + ["\n".join(parts[n - 1 :])] if len(parts) > n else parts
        parts += [""] * (n - len(parts))
        for line, part in zip(self.lines, parts, strict=True):
            line.set_text(part)

    def get_text(self) -> str:
        return self._text

    def get_window_extent(self, renderer=None):
        from matplotlib.transforms import Bbox

        boxes = [t.get_window_extent(renderer) for t in self.lines if t.get_text()]
        return Bbox.union(boxes) if boxes else self.lines[0].get_window_extent(renderer)


class BlitRedraw:
    """Drawing methods of the explorer window (module docstring: what the host provides)."""

    def _on_draw(self, _event) -> None:
        """After a full draw: keep the background, then paint the data artists over it."""
        canvas = self.fig.canvas
        self._bg = canvas.copy_from_bbox(self.fig.bbox)
        # Extents of the axes a later update may repaint (their "before"); the other static
        # artists' are taken when first needed (_repaint_axes): each costs ~10 ms of tick layout.
        renderer = canvas.get_renderer()
        self._extents = {a: _extent(a, renderer) for a in self._static_signature() if a != "figure"}
        # The y-axes' own extents, for the axes whose y-range alone may change (_repaint_y_range).
        self._yextents = {ax: ax.yaxis.get_tightbbox(renderer) for ax in self._y_rescaled_axes()}
        self._legend_pixels = {}
        for ax in self._y_rescaled_axes():
            self._keep_legend(ax, renderer)
        for artist in self._animated():
            self.fig.draw_artist(artist)

    def _static_children(self) -> list:
        """The figure's top-level artists that make up the background (not animated)."""
        children = [*self.fig.axes, *self.fig.legends, *self.fig.texts, *self.fig.patches]
        return [a for a in children if not a.get_animated()]

    def refresh(self) -> None:
        """Show the current artists, repainting as little of the background as possible.

        * Nothing static changed: the cached background is restored and only the data artists
          (and the widgets' moving parts) are drawn and blitted.
        * Some static parts changed (:meth:`_static_signature`: a panel's limits or title, the
          eigen-weight legend; a slider's label or value; a line of text): only those are
          repainted into the background (:meth:`_repaint_axes`, one region each), then as
          above. A slider move that rescales the eigen-weight axis costs one panel, not the
          window (~0.3 s); a changed summary line costs that line, not the whole summary.
        * The shared legend changed (or no background yet): a full ``canvas.draw()``.
        """
        start = time.perf_counter()
        canvas = self.fig.canvas
        sig = self._static_signature()
        old = self._sig
        changed = None if old is None else [a for a in sig if a != "figure" and sig[a] != old[a]]
        self.last_repainted = []
        if self._bg is None or old is None or sig["figure"] != old["figure"]:
            self._sig = sig
            canvas.draw()  # -> _on_draw: background + data artists
            canvas.blit(self.fig.bbox)
            self.last_draw_kind = "full"
        else:
            if changed:
                inner = {a for a in changed if self._inner_change(a, old[a], sig[a])}
                self._repaint_axes(changed, inner)
                self._sig = sig
                self.last_repainted = changed
            canvas.restore_region(self._bg)
            for artist in self._animated():
                self.fig.draw_artist(artist)
            canvas.blit(self.fig.bbox)
            self.last_draw_kind = "axes" if changed else "blit"
        self.last_draw_seconds = time.perf_counter() - start

    def _inner_change(self, artist, old, new) -> bool:
        """Whether ``artist``'s change from signature ``old`` to ``new`` lies inside it and its
        y-axis (its y-range, its in-axes legend; not its x-axis or title): then
        :meth:`_repaint_y_range` repaints only that part. The host overrides this; by default
        every change is repainted whole."""
        return False

    def _y_rescaled_axes(self) -> tuple:
        """Axes whose y-range may change alone on an update (their y-axes' extents are kept
        from each draw for :meth:`_repaint_y_range`). The host overrides this."""
        return ()

    def _repaint_axes(self, axes, inner=frozenset()) -> None:
        """Repaint the static top-level artists ``axes`` (axes or texts) into the background.

        ``inner``: those of ``axes`` whose change lies inside them and their y-axes
        (:meth:`_inner_change`), repainted by :meth:`_repaint_y_range` where it can.

        The region painted is the union of their extents before and after, grown until it
        contains every static artist it touches (each is redrawn whole, so no antialiased edge is
        blended twice); it is cleared to the figure colour, the static artists in it are drawn in
        z-order (animated ones skip themselves) and the result becomes the new background.
        Pixel-identical to a full redraw (``tests/figures/test_explorer_view.py``).
        """
        canvas = self.fig.canvas
        canvas.restore_region(self._bg)
        for artist in axes:  # one region each: far-apart changes must not merge into one box
            if not (artist in inner and self._repaint_y_range(artist)):
                self._repaint_region([artist])
        self._bg = canvas.copy_from_bbox(self.fig.bbox)

    def _keep_legend(self, ax, renderer) -> None:
        """Keep ``ax``'s legend as drawn now: the legend, its extent and, if it is opaque
        (:func:`_legend_inside`), the pixels inside its frame -- which a later
        :meth:`_repaint_y_range` pastes instead of drawing the legend (~10 ms of text)."""
        legend = ax.get_legend()
        extent = None if legend is None else legend.get_window_extent(renderer)
        inside = _legend_inside(legend, renderer)
        pixels = None if inside is None else self.fig.canvas.copy_from_bbox(inside)
        self._legend_pixels[ax] = (
            legend, None if inside is None else tuple(inside.extents), pixels, extent
        )  # fmt: skip

    def _clear(self, region, renderer) -> None:
        """Paint the pixel ``region`` (display coordinates) with the figure's background."""
        from matplotlib.patches import Rectangle
        from matplotlib.transforms import IdentityTransform

        (x0, y0), (x1, y1) = region.get_points()
        clear = Rectangle(
            (x0, y0), x1 - x0, y1 - y0, transform=IdentityTransform(), linewidth=0,
            facecolor=self.fig.patch.get_facecolor(), edgecolor="none", antialiased=False,
        )  # fmt: skip
        clear.set_figure(self.fig)
        clear.draw(renderer)

    def _repaint_y_range(self, ax) -> bool:
        """Repaint the part of ``ax`` that depends on its y-range and its in-axes legend, after
        a change of those alone (:meth:`_inner_change`).

        That part is the axes' inside (grid lines, the in-axes legend over them), its frame, the
        tick marks and the y tick labels, old and new: two regions ``R``, the axes grown by its
        tick marks, and the y-axis' extents before and after. ``R`` is cleared and the axes
        drawn with its title, x label and x tick labels hidden -- they did not change, lie
        outside ``R`` and keep their pixels -- which halves
        the drawing (~20 ms instead of ~40 ms at K = 10: text is matplotlib's costly part),
        and nothing else is measured. Every part drawn lies inside ``R``, so the result is,
        pixel for pixel, that of a full redraw (``tests/figures/test_explorer_view.py``).

        Returns False, having drawn nothing, where that does not hold: ``ax``'s y-axis extent
        before is unknown (it is not one of :meth:`_y_rescaled_axes`), a hidden part or another
        static artist reaches into ``R``, its legend (before or after) is not inside the axes'
        region, or ``ax`` has a left or right title.
        """
        from matplotlib.transforms import Bbox

        old_y = getattr(self, "_yextents", {}).get(ax)
        before = self._extents.get(ax)
        if old_y is None or before is None or ax.get_title("left") or ax.get_title("right"):
            return False
        renderer = self.fig.canvas.get_renderer()
        new_y = ax.yaxis.get_tightbbox(renderer)  # lays out the new y ticks
        xticks = [*ax.xaxis.get_major_ticks(), *ax.xaxis.get_minor_ticks()]
        yticks = [*ax.yaxis.get_major_ticks(), *ax.yaxis.get_minor_ticks()]
        # Tick marks outside the axes: their length in points, plus their line width.
        points = self.fig.dpi / 72.0
        below = (max((t.tick1line.get_markersize() for t in xticks), default=0.0) + 1.0) * points
        left = (max((t.tick1line.get_markersize() for t in yticks), default=0.0) + 1.0) * points
        box = ax.bbox
        # Two regions: the axes with its frame and tick marks, whose ink ends a few pixels
        # below it (the x tick labels start further down), and the y tick labels left of it
        # (before and after), which may reach below the axes but not under the x tick labels.
        regions = [_pixel_box(Bbox([[box.x0 - left, box.y0 - below], [box.x1, box.y1]]))]
        labels = [b for b in (old_y, new_y) if b is not None]
        if labels:
            regions.append(_pixel_box(Bbox.union(labels)))
        hidden = [ax.title, ax.xaxis.label, ax.xaxis.offsetText]
        hidden += [lab for t in xticks for lab in (t.label1, t.label2)]
        hidden = [h for h in hidden if h.get_visible()]
        # Ticks outside the x-range keep labels that are not drawn (nor placed): not checked.
        lo, hi = sorted(ax.get_xlim())
        tol = 1e-6 * (hi - lo)
        shown = [h for h in hidden if h in (ax.title, ax.xaxis.label, ax.xaxis.offsetText)]
        shown += [
            lab
            for t in xticks
            if lo - tol <= t.get_loc() <= hi + tol
            for lab in (t.label1, t.label2)
            if lab.get_visible()
        ]
        for h in shown:
            ext = _extent(h, renderer)
            if ext is not None and any(ext.overlaps(r) for r in regions):
                return False
        for other in self._static_children():
            if other is ax:
                continue
            if other not in self._extents:
                self._extents[other] = _extent(other, renderer)
            ext = self._extents[other]
            if ext is not None and any(ext.overlaps(r) for r in regions):
                return False
        for region in regions:
            self._clear(region, renderer)
        # The legend's inside is pasted as kept from its last drawing if the legend is the
        # same; else the legend is drawn, and it must lie (before and after) in the region.
        legend = ax.get_legend()
        kept = getattr(self, "_legend_pixels", {}).get(ax)
        inside = _legend_inside(legend, renderer)
        paste = (
            kept is not None
            and inside is not None
            and kept[0] is legend
            and kept[1] == tuple(inside.extents)
        )
        if not paste:
            if kept is None and legend is not None:
                return False  # where the legend was before is not known
            legends = [] if kept is None else [kept[3]]
            legends.append(None if legend is None else legend.get_window_extent(renderer))
            frame = regions[0]
            for ext in legends:
                if ext is not None and not (
                    frame.x0 <= ext.x0 and ext.x1 <= frame.x1
                    and frame.y0 <= ext.y0 and ext.y1 <= frame.y1
                ):  # fmt: skip
                    return False
        if paste:
            hidden.append(legend)
        for h in hidden:
            h.set_visible(False)
        try:
            ax.draw(renderer)
        finally:
            for h in hidden:
                h.set_visible(True)
        if paste:
            # Its frame (bounds kept from its last drawing), then its inside as kept. Drawn
            # after the rest of ax: what lies above it in z-order (the frame of ax, the tick
            # marks) is outside its frame, and the data lines are blitted over the background.
            legend.get_frame().draw(renderer)
            self.fig.canvas.restore_region(kept[2])
        elif hasattr(self, "_legend_pixels"):
            self._keep_legend(ax, renderer)
        self._extents[ax] = _extent_after_y_change(before, new_y)
        self._yextents[ax] = new_y
        return True

    def _repaint_region(self, artists) -> None:
        """Repaint ``artists`` (static, top-level) over their extents before and after.

        The region is grown until it contains every static axes or legend it touches (each is
        redrawn whole, so no antialiased edge is blended twice); figure texts it touches are
        redrawn clipped to it (the summary's line boxes overlap their neighbours'). The region
        is cleared to the figure colour and its artists are drawn in z-order (animated ones
        skip themselves).
        """
        from matplotlib.text import Text
        from matplotlib.transforms import Bbox

        renderer = self.fig.canvas.get_renderer()
        members = set(artists)
        # Before (recorded when last drawn) and after; unchanged artists keep their extent.
        after = {a: _extent(a, renderer) for a in members}
        boxes = [self._extents.get(a) for a in members] + list(after.values())
        boxes = [b for b in boxes if b is not None]
        if not boxes:  # an empty text stays empty
            self._extents.update(after)
            return
        region = _pixel_box(Bbox.union(boxes))
        statics = self._static_children()
        for a in statics:
            if a not in self._extents:
                self._extents[a] = _extent(a, renderer)
        grown = True
        while grown:
            grown = False
            for a in statics:
                ext = self._extents[a]
                if a in members or isinstance(a, Text) or ext is None:
                    continue
                if ext.overlaps(region):
                    members.add(a)
                    region = _pixel_box(Bbox.union([region, ext]))
                    grown = True
        clipped = [
            a
            for a in statics
            if isinstance(a, Text)
            and a not in members
            and self._extents[a] is not None
            and self._extents[a].overlaps(region)
        ]
        self._clear(region, renderer)
        for a in sorted([*members, *clipped], key=lambda a: a.get_zorder()):
            if a in members:
                a.draw(renderer)
                continue
            box, on = a.get_clip_box(), a.get_clip_on()
            a.set_clip_box(region)
            a.set_clip_on(True)
            try:
                a.draw(renderer)
            finally:
                a.set_clip_box(box)
                a.set_clip_on(on)
        self._extents.update(after)  # the other members did not change
        yextents = getattr(self, "_yextents", {})
        for a in artists:  # a changed axes' y-axis and legend, for a later _repaint_y_range
            if a in yextents:
                yextents[a] = a.yaxis.get_tightbbox(renderer)
                self._keep_legend(a, renderer)

    def save(self, path, **kwargs) -> None:
        """``savefig`` with every artist drawn (a saved figure skips animated artists).

        The file is rendered in memory and written atomically
        (:func:`selfdistill_cli.files.save_figure`): never through a link planted at ``path``,
        and a failed write leaves the previous file intact.
        """
        animated = [a for a in self._animated() if a.get_animated()]
        for artist in animated:
            artist.set_animated(False)
        try:
            save_figure(self.fig, path, **kwargs)
        finally:
            for artist in animated:
                artist.set_animated(True)

    def _request_draw(self) -> None:
        if self.blit:
            self.refresh()
        elif self.interactive:
            self.fig.canvas.draw_idle()
