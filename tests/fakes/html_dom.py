"""A tiny DOM over html.parser, for tests that query rendered reports by attribute."""

from html.parser import HTMLParser


class Dom(HTMLParser):
    """Just enough of a DOM: every element as {tag, attrs, text inside, tags of its ancestors}."""

    def __init__(self, text):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.elements, self.stack = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": [e["tag"] for e in self.stack]}
        self.elements.append(el)
        if tag not in ("br", "meta"):
            self.stack.append(el)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self.stack:
            el["text"] += data

    def select(self, tag=None, **attrs):
        return [e for e in self.elements if (tag is None or e["tag"] == tag)
                and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]
